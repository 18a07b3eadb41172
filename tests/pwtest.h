/*
 * A tiny test harness: every test runs in its own forked process with a
 * timeout, so a crash or hang fails that test only. A suite is one binary:
 *
 *   PW_TEST(name) { PW_CHECK(x == 1); PW_CHECK_EQ_INT(a, b); }
 *   int main(int argc, char **argv) {
 *       return pw_test_main(argc, argv, (pw_test_t[]){
 *           PW_TEST_ENTRY(name), ..., { 0 } });
 *   }
 *
 * Prints one line per test and closes with "N passed, N failed".
 * argv[1], when given, runs only the tests whose name contains it.
 * PW_TEST_NOFORK=1 runs tests in-process (for gdb).
 */
#ifndef PW_TEST_H
#define PW_TEST_H

#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct {
    const char *name;
    void (*fn)(void);
} pw_test_t;

#define PW_TEST(name) static void test_##name(void)
#define PW_TEST_ENTRY(name) { #name, test_##name }

#define PW_CHECK(cond)                                                      \
    do {                                                                    \
        if (!(cond)) {                                                      \
            fprintf(stderr, "  %s:%d: check failed: %s\n", __FILE__,        \
                    __LINE__, #cond);                                       \
            exit(1);                                                        \
        }                                                                   \
    } while (0)

#define PW_CHECK_EQ_INT(a, b)                                               \
    do {                                                                    \
        long long pw__a = (long long) (a), pw__b = (long long) (b);         \
        if (pw__a != pw__b) {                                               \
            fprintf(stderr, "  %s:%d: %s == %lld, expected %s == %lld\n",   \
                    __FILE__, __LINE__, #a, pw__a, #b, pw__b);              \
            exit(1);                                                        \
        }                                                                   \
    } while (0)

#define PW_CHECK_EQ_STR(a, b)                                               \
    do {                                                                    \
        const char *pw__a = (a), *pw__b = (b);                              \
        if (pw__a == NULL || pw__b == NULL || strcmp(pw__a, pw__b) != 0) {  \
            fprintf(stderr, "  %s:%d: %s == \"%s\", expected \"%s\"\n",     \
                    __FILE__, __LINE__, #a, pw__a ? pw__a : "(null)",       \
                    pw__b ? pw__b : "(null)");                              \
            exit(1);                                                        \
        }                                                                   \
    } while (0)

#define PW_CHECK_MEM(ptr, len, lit)                                         \
    PW_CHECK((len) == sizeof(lit) - 1 && memcmp((ptr), (lit), (len)) == 0)

/* The path of `name` in the directory of the test binary. */
static inline void
pw_test_beside(const char *name, char *path, size_t size)
{
    char *slash;
    ssize_t n;

    n = readlink("/proc/self/exe", path, size - 1);
    PW_CHECK(n > 0);
    path[n] = '\0';
    slash = strrchr(path, '/');
    PW_CHECK(slash != NULL
             && (size_t) (slash + 1 - path) + strlen(name) < size);
    strcpy(slash + 1, name);
}

/*
 * The bytes of file `name` in the test binary's own directory (where the
 * build puts the test's wasm files); malloc'd, never NULL: fails the test.
 */
static inline uint8_t *
pw_test_read_beside(const char *name, size_t *len)
{
    char path[4096];
    uint8_t *b;
    FILE *f;
    long sz;

    pw_test_beside(name, path, sizeof(path));
    f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "  cannot open %s\n", path);
        PW_CHECK(0);
    }
    PW_CHECK(fseek(f, 0, SEEK_END) == 0 && (sz = ftell(f)) >= 0);
    PW_CHECK(fseek(f, 0, SEEK_SET) == 0);
    b = malloc(sz ? (size_t) sz : 1);
    PW_CHECK(b != NULL && fread(b, 1, (size_t) sz, f) == (size_t) sz);
    fclose(f);
    *len = (size_t) sz;
    return b;
}

#ifndef PW_TEST_TIMEOUT
#define PW_TEST_TIMEOUT 60
#endif

static inline int
pw_test_main(int argc, char **argv, pw_test_t *tests)
{
    int passed = 0, failed = 0, nofork;
    const char *filter = argc > 1 ? argv[1] : NULL;

    nofork = getenv("PW_TEST_NOFORK") != NULL;
    setvbuf(stdout, NULL, _IONBF, 0);

    for (pw_test_t *t = tests; t->name; t++) {
        int status, ok;
        pid_t pid;

        if (filter && strstr(t->name, filter) == NULL) {
            continue;
        }
        if (nofork) {
            t->fn();
            ok = 1;
        } else {
            pid = fork();
            if (pid == 0) {
                alarm(PW_TEST_TIMEOUT);
                t->fn();
                /* exit, not _exit: LeakSanitizer checks at exit */
                exit(0);
            }
            ok = pid > 0 && waitpid(pid, &status, 0) == pid
                 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
            if (!ok && pid > 0 && WIFSIGNALED(status)) {
                fprintf(stderr, "  killed by signal %d%s\n", WTERMSIG(status),
                        WTERMSIG(status) == SIGALRM ? " (timeout)" : "");
            }
        }
        printf("%s %s\n", ok ? "ok  " : "FAIL", t->name);
        ok ? passed++ : failed++;
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}

#endif /* PW_TEST_H */
