;; No proxy_abi_version_* export.
(module
  (memory (export "memory") 1)
  (func (export "proxy_on_memory_allocate") (param i32) (result i32)
    (i32.const 1024))
  (func (export "proxy_on_configure") (param i32 i32) (result i32)
    (i32.const 1)))
