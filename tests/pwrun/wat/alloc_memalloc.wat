;; Allocator: only proxy_on_memory_allocate. proxy_on_configure reads
;; its configuration (the host must allocate it with that export) and logs
;; "config: <bytes>" then "allocations: N" (N = calls of the allocator).
(module
  (import "env" "proxy_get_buffer_bytes"
    (func $get (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_log" (func $log (param i32 i32 i32) (result i32)))
  (memory (export "memory") 2)
  (data (i32.const 300) "allocations: ?")
  (global $heap (mut i32) (i32.const 4096))
  (global $calls (mut i32) (i32.const 0))
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_memory_allocate") (param $n i32) (result i32)
    (local $p i32)
    (global.set $calls (i32.add (global.get $calls) (i32.const 1)))
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (global.get $heap)
      (i32.and (i32.add (local.get $n) (i32.const 15)) (i32.const -8))))
    (local.get $p))
  (func (export "proxy_on_configure") (param $root i32) (param $size i32) (result i32)
    (if (i32.ne (call $get (i32.const 7) (i32.const 0) (local.get $size)
                            (i32.const 200) (i32.const 204))
                (i32.const 0))
      (then (return (i32.const 0))))
    (drop (call $log (i32.const 2) (i32.load (i32.const 200))
                      (i32.load (i32.const 204))))
    (i32.store8 (i32.const 313) (i32.add (i32.const 48) (global.get $calls)))
    (drop (call $log (i32.const 2) (i32.const 300) (i32.const 14)))
    (i32.const 1)))
