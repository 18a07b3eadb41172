;; Imports a host function nobody provides: refused, naming env.foo.
(module
  (import "env" "foo" (func (param i32)))
  (memory (export "memory") 1)
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_memory_allocate") (param i32) (result i32)
    i32.const 1024))
