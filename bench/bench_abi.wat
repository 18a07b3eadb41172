;; A Proxy-Wasm module for bench/hostcall_bench: on_request_headers loops
;; n times over proxy_get_header_map_value of a small header, so one run
;; measures the host call and n = 0 the bare round trip.
(module
  (import "env" "proxy_get_header_map_value"
    (func $get (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_add_header_map_value"
    (func $add (param i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "x-small")
  (data (i32.const 32) "x-added1")
  (global $bump (mut i32) (i32.const 4096))
  (func (export "proxy_abi_version_0_2_1"))
  ;; a bump allocator that wraps: the bench never keeps what it reads
  (func (export "proxy_on_memory_allocate") (param $n i32) (result i32)
    (local $p i32)
    (if (i32.gt_u (i32.add (global.get $bump) (local.get $n)) (i32.const 60000))
      (then (global.set $bump (i32.const 4096))))
    (local.set $p (global.get $bump))
    (global.set $bump (i32.add (global.get $bump) (i32.and
      (i32.add (local.get $n) (i32.const 7)) (i32.const -8))))
    (local.get $p))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_request_headers")
    (param $ctx i32) (param $n i32) (param $eos i32) (result i32)
    (block $done
      (loop $l
        (br_if $done (i32.eqz (local.get $n)))
        (drop (call $get (i32.const 0) (i32.const 16) (i32.const 7)
                         (i32.const 64) (i32.const 68)))
        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
        (br $l)))
    (i32.const 0))
  ;; one realistic filter step: read a header, add one
  (func (export "proxy_on_response_headers")
    (param $ctx i32) (param $n i32) (param $eos i32) (result i32)
    (drop (call $get (i32.const 2) (i32.const 16) (i32.const 7)
                     (i32.const 64) (i32.const 68)))
    (drop (call $add (i32.const 2) (i32.const 32) (i32.const 8)
                     (i32.const 16) (i32.const 7)))
    (i32.const 0))
)
