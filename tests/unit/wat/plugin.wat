;; A small 0.2.1 plugin built by wat2wasm: the unit tests check that the
;; fake engine's wasm encoder renders the same imports and exports.
(module
  (import "env" "proxy_log" (func (param i32 i32 i32) (result i32)))
  (import "env" "proxy_record_metric" (func (param i32 i64) (result i32)))
  (import "wasi_snapshot_preview1" "clock_time_get"
    (func (param i32 i64 i32) (result i32)))
  (memory (export "memory") 16)
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_memory_allocate") (param i32) (result i32)
    i32.const 0)
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    i32.const 0)
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32)
    i32.const 1)
  (func (export "_initialize")))
