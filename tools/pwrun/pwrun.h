/*
 * pwrun: internal interfaces. The scenario model (scenario.c), the host
 * interface implementation and the player (host.c, play.c), the CLI
 * (main.c). docs/PWRUN.md describes the scenario and report formats.
 */
#ifndef PWRUN_H
#define PWRUN_H

#include <pw/pw.h>

#include "json.h"

/* ---- the scenario ----------------------------------------------------- */

typedef struct {
    pw_pair_t *pairs;
    size_t n;
} pwr_hdrs_t;

typedef struct {
    pw_str_t *chunks;
    size_t n;
} pwr_chunks_t;

typedef enum {
    PWR_ANSWER_OK = 0,
    PWR_ANSWER_FAIL,            /* http: 0 headers; grpc: close 14 */
    PWR_ANSWER_NONE             /* never answered */
} pwr_answer_kind_t;

typedef struct {
    pwr_answer_kind_t kind;
    /* http */
    pwr_hdrs_t headers;
    pw_str_t body;
    pwr_hdrs_t trailers;
    /* grpc */
    pwr_hdrs_t initial_metadata;
    int has_initial_metadata;
    pwr_chunks_t messages;
    pwr_hdrs_t trailing_metadata;
    int has_trailing_metadata;
    uint32_t status;
    pw_str_t message;
    int close;                  /* grpc streams: close after the messages */
} pwr_answer_t;

typedef struct {
    pw_str_t upstream;
    pwr_answer_t *answers;
    size_t n;
    int repeat;                 /* one answer for every call */
    size_t used;                /* runtime: calls answered so far */
} pwr_callout_t;

typedef struct {
    pwr_callout_t *items;
    size_t n;
} pwr_callouts_t;

typedef struct {
    pw_str_t *segs;
    size_t nseg;
    pw_str_t value;
} pwr_prop_t;

typedef struct {
    pwr_prop_t *items;
    size_t n;
} pwr_props_t;

typedef struct {
    pw_str_t vm_id;
    pw_str_t name;
    pwr_chunks_t items;
} pwr_enqueue_t;

typedef struct {
    pwr_enqueue_t *items;
    size_t n;
} pwr_enqueues_t;

typedef enum {
    PWR_TCP_DOWNSTREAM = 0,
    PWR_TCP_UPSTREAM,
    PWR_TCP_CLOSE_DOWNSTREAM,
    PWR_TCP_CLOSE_UPSTREAM
} pwr_tcp_event_kind_t;

typedef struct {
    pwr_tcp_event_kind_t kind;
    pw_str_t data;
    int end;
} pwr_tcp_event_t;

typedef enum {
    PWR_EX_HTTP = 0,
    PWR_EX_TCP
} pwr_ex_kind_t;

typedef struct {
    pwr_ex_kind_t kind;
    uint32_t ticks_before;
    pwr_enqueues_t enqueue_before;
    pwr_props_t props;
    pwr_callouts_t callouts;
    /* http */
    pwr_hdrs_t req_headers;
    pwr_chunks_t req_body;
    pwr_hdrs_t req_trailers;
    pwr_hdrs_t resp_headers;
    pwr_chunks_t resp_body;
    pwr_hdrs_t resp_trailers;
    /* tcp */
    pwr_tcp_event_t *tcp;
    size_t ntcp;
} pwr_exchange_t;

typedef struct {
    pw_str_t name;
    pw_str_t result;
} pwr_foreign_t;

typedef struct pwr_alloc_s pwr_alloc_t;

typedef struct {
    pwr_json_t *doc;
    pwr_alloc_t *allocs;        /* everything below lives here or in doc */

    pw_str_t vm_id;
    pw_str_t vm_config;
    pw_str_t root_id;
    pw_str_t plugin_name;
    pw_str_t config;
    pw_str_t *env;
    size_t nenv;
    uint32_t max_call_ms;
    pw_log_level_t log_level;
    uint64_t clock_ns;
    uint32_t max_wait_ticks;

    pwr_props_t props;
    pwr_callouts_t callouts;
    pwr_foreign_t *foreign;
    size_t nforeign;
    pw_str_t *queues;           /* registered by pwrun, reported at the end */
    size_t nqueues;

    uint32_t ticks;
    pwr_enqueues_t enqueue;
    pwr_exchange_t *exchanges;
    size_t nexchanges;
    uint32_t ticks_after;
} pwr_scenario_t;

/*
 * Read a scenario from JSON text. -1 with a one-line reason in err
 * ("line 3, column 9: request.headers: expected ..."). An empty text
 * (len 0) is not accepted; pass NULL text for the default scenario.
 */
int pwr_scenario_parse(const char *text, size_t len, pwr_scenario_t *sc,
    char *err, size_t errlen);
void pwr_scenario_free(pwr_scenario_t *sc);

const char *pwr_log_level_name(pw_log_level_t l);

/* ---- the run ---------------------------------------------------------- */

typedef enum {
    PWR_DLV_HTTP = 0,
    PWR_DLV_GRPC_INITIAL,
    PWR_DLV_GRPC_MESSAGE,
    PWR_DLV_GRPC_TRAILING,
    PWR_DLV_GRPC_CLOSE,
    PWR_DLV_QUEUE
} pwr_dlv_kind_t;

typedef struct {
    pwr_dlv_kind_t kind;
    uint32_t token;             /* callouts; qid for queues */
    const pwr_answer_t *answer; /* NULL: failure */
    size_t index;               /* grpc message index */
    int dropped;                /* cancelled before delivery */
} pwr_delivery_t;

/* Per-exchange state handed to the core as the stream's host data. */
typedef struct {
    struct pwr_run_s *run;
    const pwr_exchange_t *sc;
    size_t index;
    pw_stream_t *stream;

    pw_map_t *maps[4];          /* request/response headers/trailers */
    int have_map[4];
    pwr_buf_t pending[4];       /* req body, resp body, down, up data */
    int have_buf[4];
    int resume[4];              /* continue_stream per stream type */
    int ended;                  /* local response, close or failure */
    int local;                  /* a local response was sent */
    int complete[2];            /* request/response fully forwarded */
    int responded;              /* the upstream response started */
    const char *closed;         /* close_stream's stream, or NULL */
    const char *stalled;        /* the hook left paused, or NULL */
    const char *failed;         /* the hook that failed, or NULL */
    pwr_props_t set_props;      /* set_property on the stream */

    pwr_json_t *actions;
    pwr_json_t *callouts;
    pwr_json_t *props_set;
    pwr_json_t *local_response;
    pwr_json_t *fwd[4];         /* headers/trailers as forwarded */
    pwr_buf_t forwarded[4];     /* bodies/data as forwarded */
} pwr_ex_t;

typedef struct pwr_run_s {
    pwr_scenario_t *sc;
    pw_engine_t *engine;
    pw_module_t *module;
    pw_store_t *store;
    pw_vm_t *vm;
    pw_plugin_t *plugin;

    uint32_t tick_ms;
    uint64_t wall_ns;
    uint64_t mono_ns;
    uint32_t ticks_fired;
    uint32_t ticks_skipped;

    pwr_delivery_t *dlv;        /* FIFO of pending deliveries */
    size_t ndlv;
    size_t dlv_head;
    size_t dlv_cap;

    pwr_ex_t *ex;               /* the exchange being played, or NULL */
    pwr_props_t set_props;      /* set_property on the root context */
    pwr_buf_t scratch;          /* borrowed results */
    uint32_t *qids;             /* queues seen, reported at the end */
    size_t nqids;
    int failure_recorded;
    size_t ndelivered;

    const char *plugin_path;
    int start_ok;
    const char *start_what;     /* "cannot start", "cannot configure" */
    char start_error[512];      /* the reason */
    pwr_json_t *queue_names;    /* [{"id", "name"}] registered by pwrun */
    pwr_json_t *logs;
    pwr_json_t *events;         /* root-context events outside exchanges */
    pwr_json_t *callouts;       /* callouts made outside exchanges */
    pwr_json_t *props_set;
    pwr_json_t *foreign_calls;
    pwr_json_t *failures;
    pwr_json_t *exchanges;
    pwr_json_t *host_errors;
} pwr_run_t;

extern const pw_host_t pwr_host;

/* host.c helpers used by the player */
int pwr_foreign_fn(void *data, const pw_hctx_t *c, pw_str_t args,
    uint8_t **result, size_t *rlen);
void pwr_queue_ready(void *data, uint32_t qid, uint64_t owner);
pwr_json_t *pwr_pairs_json(const pw_pairs_t *p);
pwr_json_t *pwr_map_json(const pw_map_t *m);
void pwr_note_qid(pwr_run_t *run, uint32_t qid);
void pwr_host_error(pwr_run_t *run, const char *what, const char *detail);
void pwr_record(pwr_run_t *run, pwr_json_t *event);
void pwr_props_clear(pwr_props_t *p);

/* Owner value of queues pwrun registers itself: never delivered. */
#define PWR_QUEUE_OWNER_PWRUN UINT64_MAX

/*
 * play.c: everything after the module is loaded (run->sc, run->module and
 * run->plugin_path set). *report gets the report, also when the plugin
 * failed to start. Returns 0, or 1 when the plugin could not start or be
 * configured (run->start_error says why).
 */
int pwr_play(pwr_run_t *run, pwr_json_t **report);
void pwr_run_free(pwr_run_t *run);

#endif /* PWRUN_H */
