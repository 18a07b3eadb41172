;; Traps in proxy_on_request_headers (through a named helper, for the
;; backtrace): the exchange fails, the trap is reported, exit status 0.
(module
  (memory (export "memory") 1)
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_memory_allocate") (param i32) (result i32)
    i32.const 1024)
  (func (export "proxy_on_context_create") (param i32 i32))
  (func $deep_helper (result i32)
    unreachable)
  (func (export "proxy_on_request_headers")
      (param i32 i32 i32) (result i32)
    call $deep_helper))
