/*
 * proxy-wasm-c: shared types.
 *
 * Two error vocabularies that never mix:
 *   - pw_rc_t (PW_OK, PW_E*): what functions of this library return;
 *   - pw_status_t (PW_STATUS_*): Proxy-Wasm status codes, used only at the
 *     hostcall boundary and in host interface callbacks that answer a
 *     hostcall directly.
 */
#ifndef PW_TYPES_H
#define PW_TYPES_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- library return codes ------------------------------------------- */

#define PW_RC_MAP(X)                                                        \
    X(PW_OK, 0, "success")                                                  \
    X(PW_ENOMEM, -1, "out of memory")                                       \
    X(PW_EINVAL, -2, "invalid argument")                                    \
    X(PW_ENOTFOUND, -3, "not found")                                        \
    X(PW_EMALFORMED, -4, "malformed wasm module")                           \
    X(PW_ELINK, -5, "cannot link module")                                   \
    X(PW_ETRAP, -6, "plugin trapped")                                       \
    X(PW_EINTERRUPTED, -7, "plugin call interrupted")                       \
    X(PW_EENGINE, -8, "engine failure")                                     \
    X(PW_ELIMIT, -9, "limit exceeded")                                      \
    X(PW_EFULL, -10, "no space left")                                       \
    X(PW_EEMPTY, -11, "empty")                                              \
    X(PW_ECAS, -12, "compare-and-swap mismatch")                            \
    X(PW_EFAILED, -13, "plugin failed")                                     \
    X(PW_EUNIMPLEMENTED, -14, "not implemented")                            \
    X(PW_EBOUNDS, -15, "out of bounds")                                     \
    X(PW_EEXIST, -16, "already exists")                                     \
    X(PW_EIO, -17, "i/o error")

typedef enum {
#define PW__RC_ENUM(name, val, msg) name = val,
    PW_RC_MAP(PW__RC_ENUM)
#undef PW__RC_ENUM
} pw_rc_t;

/* A static string describing rc; never NULL. */
const char *pw_strerror(int rc);

/* ---- Proxy-Wasm enums (ABI.md section 3) ----------------------------- */

typedef enum {
    PW_STATUS_OK = 0,
    PW_STATUS_NOT_FOUND = 1,
    PW_STATUS_BAD_ARGUMENT = 2,
    PW_STATUS_SERIALIZATION_FAILURE = 3,
    PW_STATUS_PARSE_FAILURE = 4,
    PW_STATUS_BAD_EXPRESSION = 5,
    PW_STATUS_INVALID_MEMORY_ACCESS = 6,
    PW_STATUS_EMPTY = 7,
    PW_STATUS_CAS_MISMATCH = 8,
    PW_STATUS_RESULT_MISMATCH = 9,
    PW_STATUS_INTERNAL_FAILURE = 10,
    PW_STATUS_BROKEN_CONNECTION = 11,
    PW_STATUS_UNIMPLEMENTED = 12
} pw_status_t;

typedef enum {
    PW_LOG_TRACE = 0,
    PW_LOG_DEBUG = 1,
    PW_LOG_INFO = 2,
    PW_LOG_WARN = 3,
    PW_LOG_ERROR = 4,
    PW_LOG_CRITICAL = 5
} pw_log_level_t;

typedef enum {
    PW_ACTION_CONTINUE = 0,
    PW_ACTION_PAUSE = 1
} pw_action_t;

typedef enum {
    PW_BUFFER_HTTP_REQUEST_BODY = 0,
    PW_BUFFER_HTTP_RESPONSE_BODY = 1,
    PW_BUFFER_DOWNSTREAM_DATA = 2,
    PW_BUFFER_UPSTREAM_DATA = 3,
    PW_BUFFER_HTTP_CALL_RESPONSE_BODY = 4,
    PW_BUFFER_GRPC_CALL_MESSAGE = 5,
    PW_BUFFER_VM_CONFIGURATION = 6,
    PW_BUFFER_PLUGIN_CONFIGURATION = 7,
    PW_BUFFER_FOREIGN_FUNCTION_ARGUMENTS = 8,
    PW_BUFFER_MAX = 8
} pw_buffer_type_t;

typedef enum {
    PW_MAP_HTTP_REQUEST_HEADERS = 0,
    PW_MAP_HTTP_REQUEST_TRAILERS = 1,
    PW_MAP_HTTP_RESPONSE_HEADERS = 2,
    PW_MAP_HTTP_RESPONSE_TRAILERS = 3,
    PW_MAP_GRPC_CALL_INITIAL_METADATA = 4,
    PW_MAP_GRPC_CALL_TRAILING_METADATA = 5,
    PW_MAP_HTTP_CALL_RESPONSE_HEADERS = 6,
    PW_MAP_HTTP_CALL_RESPONSE_TRAILERS = 7,
    PW_MAP_MAX = 7
} pw_map_type_t;

typedef enum {
    PW_PEER_UNKNOWN = 0,
    PW_PEER_LOCAL = 1,
    PW_PEER_REMOTE = 2
} pw_peer_type_t;

typedef enum {
    PW_STREAM_HTTP_REQUEST = 0,
    PW_STREAM_HTTP_RESPONSE = 1,
    PW_STREAM_DOWNSTREAM = 2,
    PW_STREAM_UPSTREAM = 3
} pw_stream_type_t;

typedef enum {
    PW_METRIC_COUNTER = 0,
    PW_METRIC_GAUGE = 1,
    PW_METRIC_HISTOGRAM = 2
} pw_metric_type_t;

/* ABI versions a module can declare through its marker export. */
typedef enum {
    PW_ABI_UNKNOWN = 0,
    PW_ABI_0_1_0 = 1 << 0,
    PW_ABI_0_2_0 = 1 << 1,
    PW_ABI_0_2_1 = 1 << 2,
    PW_ABI_ALL = PW_ABI_0_1_0 | PW_ABI_0_2_0 | PW_ABI_0_2_1
} pw_abi_t;

/* A borrowed byte string (not NUL-terminated). */
typedef struct {
    const char *data;
    size_t len;
} pw_str_t;

#define PW_STR(s) ((pw_str_t){ (s), sizeof(s) - 1 })

/* ---- limits (overridable at build time) ------------------------------ */

#ifndef PW_MAX_MAP_PAIRS
#define PW_MAX_MAP_PAIRS 1024              /* pairs in one header map */
#endif
#ifndef PW_MAX_MAP_BYTES
#define PW_MAX_MAP_BYTES (1024 * 1024)     /* serialized header map */
#endif
#ifndef PW_MAX_BUFFER_BYTES
#define PW_MAX_BUFFER_BYTES (64 * 1024 * 1024) /* one body/buffer */
#endif
#ifndef PW_MAX_PROPERTY_BYTES
#define PW_MAX_PROPERTY_BYTES (1024 * 1024)
#endif
#ifndef PW_MAX_LOG_BYTES
#define PW_MAX_LOG_BYTES (64 * 1024)
#endif
#ifndef PW_MAX_RANDOM_BYTES
#define PW_MAX_RANDOM_BYTES (64 * 1024)    /* as Envoy */
#endif
#ifndef PW_MAX_KEY_BYTES
#define PW_MAX_KEY_BYTES (64 * 1024)       /* shared data key / queue name */
#endif

#ifdef __cplusplus
}
#endif

#endif /* PW_TYPES_H */
