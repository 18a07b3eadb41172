;; Declares ABI 0.1.0 but imports proxy_continue_stream (0.2.0 and later).
(module
  (import "env" "proxy_continue_stream" (func (param i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "proxy_abi_version_0_1_0"))
  (func (export "proxy_on_memory_allocate") (param i32) (result i32)
    (i32.const 1024)))
