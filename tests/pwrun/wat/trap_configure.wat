;; Traps in proxy_on_configure: the plugin cannot be configured; pwrun
;; reports the trap and exits 1.
(module
  (memory (export "memory") 1)
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_memory_allocate") (param i32) (result i32)
    i32.const 1024)
  (func $configure_boom (export "proxy_on_configure")
      (param i32 i32) (result i32)
    unreachable))
