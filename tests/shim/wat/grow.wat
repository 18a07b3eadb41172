;; The shim's fast path against memory growth: the plugin's memory grows
;; before a hostcall (phase 1 sees a new size) or inside its allocator
;; (phase 2 does); the value must land right every time.
;;
;; proxy_on_request_headers(ctx, scenario, eos), record at 1024:
;;   0: get x-small; 1: grow one page, then get; 2: get, the allocator
;;   grows one page and answers a pointer in the new page.
(module
  (import "env" "proxy_get_header_map_value"
    (func $get (param i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "x-small")
  (global $bump (mut i32) (i32.const 4096))
  (global $grow (mut i32) (i32.const 0))
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_memory_allocate") (param $n i32) (result i32)
    (local $p i32)
    (if (global.get $grow)
      (then
        (global.set $grow (i32.const 0))
        ;; the first byte of the new page
        (return (i32.mul (memory.grow (i32.const 1)) (i32.const 65536)))))
    (local.set $p (global.get $bump))
    (global.set $bump (i32.add (global.get $bump) (i32.const 64)))
    (if (i32.gt_u (global.get $bump) (i32.const 60000))
      (then (global.set $bump (i32.const 4096))))
    (local.get $p))
  (func (export "proxy_on_request_headers")
    (param $ctx i32) (param $s i32) (param $eos i32) (result i32)
    (i32.store (i32.const 1028) (i32.const 0xAAAAAAAA))
    (i32.store (i32.const 1032) (i32.const 0xAAAAAAAA))
    (if (i32.eq (local.get $s) (i32.const 1))
      (then (drop (memory.grow (i32.const 1)))))
    (if (i32.eq (local.get $s) (i32.const 2))
      (then (global.set $grow (i32.const 1))))
    (i32.store (i32.const 1024)
      (call $get (i32.const 0) (i32.const 16) (i32.const 7)
                 (i32.const 1028) (i32.const 1032)))
    (i32.const 0))
)
