;; Calls every hostcall that returns bytes through the allocator and
;; records (status, ptr, size, cas) per call at 1024 + 16 * k, the three
;; outs preset to 0xAAAAAAAA. Run once on the shim and once on the plain
;; path, the records and the bytes they point to must be equal.
;;
;; proxy_on_request_headers(ctx, scenario, eos):
;;   0: the calls below; 1: the allocator traps inside a hostcall.
(module
  (import "env" "proxy_get_header_map_value"
    (func $get (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_get_header_map_pairs"
    (func $pairs (param i32 i32 i32) (result i32)))
  (import "env" "proxy_get_buffer_bytes"
    (func $buf (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_get_property"
    (func $prop (param i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_set_shared_data"
    (func $kvset (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_get_shared_data"
    (func $kvget (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_register_shared_queue"
    (func $qreg (param i32 i32 i32) (result i32)))
  (import "env" "proxy_enqueue_shared_queue"
    (func $qput (param i32 i32 i32) (result i32)))
  (import "env" "proxy_dequeue_shared_queue"
    (func $qget (param i32 i32 i32) (result i32)))
  (import "env" "proxy_get_status"
    (func $status (param i32 i32 i32) (result i32)))
  (import "env" "proxy_call_foreign_function"
    (func $ff (param i32 i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 2)
  (data (i32.const 16) "x-small")
  (data (i32.const 32) "missing")
  (data (i32.const 48) "plugin_name")
  (data (i32.const 64) "k")
  (data (i32.const 68) "v1")
  (data (i32.const 72) "q")
  (data (i32.const 76) "item")
  (data (i32.const 80) "echo")
  (data (i32.const 88) "xyz")
  (data (i32.const 96) "x-big")
  (global $bump (mut i32) (i32.const 8192))
  (global $mode (mut i32) (i32.const 0))
  (global $inside (mut i32) (i32.const 0))
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_context_create") (param i32 i32))

  (func $slot (param $k i32) (result i32)
    (local $s i32)
    (local.set $s (i32.add (i32.const 1024) (i32.shl (local.get $k)
                                                      (i32.const 4))))
    (i32.store offset=4 (local.get $s) (i32.const 0xAAAAAAAA))
    (i32.store offset=8 (local.get $s) (i32.const 0xAAAAAAAA))
    (i32.store offset=12 (local.get $s) (i32.const 0xAAAAAAAA))
    (local.get $s))

  ;; mode 0: bump; 1: fail (0); 2: trap; 3: call a shimmed hostcall first
  (func (export "proxy_on_memory_allocate") (param $n i32) (result i32)
    (local $p i32) (local $s i32)
    (if (i32.eq (global.get $mode) (i32.const 1)) (then (return (i32.const 0))))
    (if (i32.eq (global.get $mode) (i32.const 2)) (then unreachable))
    (if (i32.and (i32.eq (global.get $mode) (i32.const 3))
                 (i32.eqz (global.get $inside)))
      (then
        (global.set $inside (i32.const 1))
        (local.set $s (call $slot (i32.const 20)))
        (i32.store (local.get $s)
          (call $get (i32.const 0) (i32.const 16) (i32.const 7)
            (i32.add (local.get $s) (i32.const 4))
            (i32.add (local.get $s) (i32.const 8))))
        (global.set $inside (i32.const 0))))
    (local.set $p (global.get $bump))
    (global.set $bump (i32.add (global.get $bump) (i32.and
      (i32.add (local.get $n) (i32.const 7)) (i32.const -8))))
    (local.get $p))

  (func $get_into (param $k i32) (param $key i32) (param $klen i32)
    (local $s i32)
    (local.set $s (call $slot (local.get $k)))
    (i32.store (local.get $s)
      (call $get (i32.const 0) (local.get $key) (local.get $klen)
        (i32.add (local.get $s) (i32.const 4))
        (i32.add (local.get $s) (i32.const 8)))))

  (func (export "proxy_on_request_headers")
    (param $ctx i32) (param $scenario i32) (param $eos i32) (result i32)
    (local $s i32) (local $q i32)
    (if (i32.eq (local.get $scenario) (i32.const 1))
      (then
        (global.set $mode (i32.const 2))
        (call $get_into (i32.const 0) (i32.const 16) (i32.const 7))
        (return (i32.const 0))))
    (call $get_into (i32.const 0) (i32.const 16) (i32.const 7))
    (call $get_into (i32.const 1) (i32.const 32) (i32.const 7))
    (local.set $s (call $slot (i32.const 2)))
    (i32.store (local.get $s) (call $pairs (i32.const 0)
      (i32.add (local.get $s) (i32.const 4))
      (i32.add (local.get $s) (i32.const 8))))
    (local.set $s (call $slot (i32.const 3)))
    (i32.store (local.get $s) (call $buf (i32.const 7) (i32.const 0)
      (i32.const -1) (i32.add (local.get $s) (i32.const 4))
      (i32.add (local.get $s) (i32.const 8))))
    (local.set $s (call $slot (i32.const 4)))
    (i32.store (local.get $s) (call $prop (i32.const 48) (i32.const 11)
      (i32.add (local.get $s) (i32.const 4))
      (i32.add (local.get $s) (i32.const 8))))
    (drop (call $kvset (i32.const 64) (i32.const 1) (i32.const 68)
      (i32.const 2) (i32.const 0)))
    (local.set $s (call $slot (i32.const 5)))
    (i32.store (local.get $s) (call $kvget (i32.const 64) (i32.const 1)
      (i32.add (local.get $s) (i32.const 4))
      (i32.add (local.get $s) (i32.const 8))
      (i32.add (local.get $s) (i32.const 12))))
    (drop (call $qreg (i32.const 72) (i32.const 1) (i32.const 1000)))
    (local.set $q (i32.load (i32.const 1000)))
    (drop (call $qput (local.get $q) (i32.const 76) (i32.const 4)))
    (local.set $s (call $slot (i32.const 6)))
    (i32.store (local.get $s) (call $qget (local.get $q)
      (i32.add (local.get $s) (i32.const 4))
      (i32.add (local.get $s) (i32.const 8))))
    (local.set $s (call $slot (i32.const 7)))
    (i32.store (local.get $s) (call $qget (local.get $q)
      (i32.add (local.get $s) (i32.const 4))
      (i32.add (local.get $s) (i32.const 8))))
    (local.set $s (call $slot (i32.const 8)))
    (i32.store (local.get $s) (call $status
      (i32.add (local.get $s) (i32.const 12))
      (i32.add (local.get $s) (i32.const 4))
      (i32.add (local.get $s) (i32.const 8))))
    (local.set $s (call $slot (i32.const 9)))
    (i32.store (local.get $s) (call $ff (i32.const 80) (i32.const 4)
      (i32.const 88) (i32.const 3)
      (i32.add (local.get $s) (i32.const 4))
      (i32.add (local.get $s) (i32.const 8))))
    ;; a bad out pointer
    (local.set $s (call $slot (i32.const 10)))
    (i32.store (local.get $s) (call $get (i32.const 0) (i32.const 16)
      (i32.const 7) (i32.const 0xFFFFFFF0)
      (i32.add (local.get $s) (i32.const 8))))
    ;; an empty buffer: no allocation
    (local.set $s (call $slot (i32.const 11)))
    (i32.store (local.get $s) (call $buf (i32.const 6) (i32.const 0)
      (i32.const -1) (i32.add (local.get $s) (i32.const 4))
      (i32.add (local.get $s) (i32.const 8))))
    ;; larger than the stack copy
    (call $get_into (i32.const 12) (i32.const 96) (i32.const 5))
    ;; the allocator fails
    (global.set $mode (i32.const 1))
    (call $get_into (i32.const 13) (i32.const 16) (i32.const 7))
    (local.set $s (call $slot (i32.const 15)))
    (i32.store (local.get $s) (call $kvget (i32.const 64) (i32.const 1)
      (i32.add (local.get $s) (i32.const 4))
      (i32.add (local.get $s) (i32.const 8))
      (i32.add (local.get $s) (i32.const 12))))
    ;; the allocator calls a shimmed hostcall itself (record 20)
    (global.set $mode (i32.const 3))
    (call $get_into (i32.const 14) (i32.const 96) (i32.const 5))
    (global.set $mode (i32.const 0))
    (i32.const 0))
)
