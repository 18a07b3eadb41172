;; PW_IMPORT_FAST imports: the fast path is taken where it can be, gives
;; the same answers as the plain one, and a failure still aborts the call.
(module
  (import "env" "add" (func $add (param i32 i32) (result i32)))
  (import "env" "fail" (func $fail (param i32) (result i32)))
  (import "env" "wide"
    (func $wide (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "env" "wide64" (func $wide64 (param i64) (result i32)))
  (global $spins (mut i32) (i32.const 0))
  (func (export "call_add") (param i32 i32) (result i32)
    (call $add (local.get 0) (local.get 1)))
  (func (export "call_wide") (result i32)
    (call $wide (i32.const 1) (i32.const 2) (i32.const 3) (i32.const 4)
                (i32.const 5) (i32.const 6) (i32.const -7) (i32.const 8)))
  (func (export "call_wide64") (param i64) (result i32)
    (call $wide64 (local.get 0)))
  ;; after the failing import, spin: the abort lands at the loop's check
  (func (export "call_fail") (result i32)
    (drop (call $fail (i32.const 7)))
    (loop $l
      (global.set $spins (i32.add (global.get $spins) (i32.const 1)))
      (br_if $l (i32.lt_u (global.get $spins) (i32.const 100000000))))
    (i32.const 5))
  (func (export "spins") (result i32) (global.get $spins))
)
