/* The engine backends by name. */

#include <string.h>

#include <pw/pw_engine.h>

const pw_engine_vt_t *
pw_engine_find(const char *name)
{
    static const pw_engine_vt_t *const all[] = {
        &pw_engine_v8, &pw_engine_w2c
    };
    size_t i;

    for (i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
        if (strcmp(all[i]->name, name) == 0) {
            return all[i];
        }
    }
    return NULL;
}
