;; Declares ABI 0.1.0 but exports the 3-parameter proxy_on_request_headers
;; (as some SDK builds do): it must still be called, with end_of_stream.
;; It adds "x-arity3: eos=<0|1>" to the request.
(module
  (import "env" "proxy_add_header_map_value"
    (func $add (param i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 2)
  (data (i32.const 100) "x-arity3")
  (data (i32.const 120) "eos=?")
  (global $heap (mut i32) (i32.const 4096))
  (func (export "proxy_abi_version_0_1_0"))
  (func (export "proxy_on_memory_allocate") (param $n i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (global.get $heap)
      (i32.and (i32.add (local.get $n) (i32.const 7)) (i32.const -8))))
    (local.get $p))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_request_headers")
      (param $ctx i32) (param $n i32) (param $eos i32) (result i32)
    (i32.store8 (i32.const 124) (i32.add (i32.const 48) (local.get $eos)))
    (drop (call $add (i32.const 0) (i32.const 100) (i32.const 8)
                     (i32.const 120) (i32.const 5)))
    (i32.const 0)))
