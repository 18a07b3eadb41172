;; proxy_log imported with the wrong signature (it takes three i32).
(module
  (import "env" "proxy_log" (func (param i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_memory_allocate") (param i32) (result i32)
    (i32.const 1024)))
