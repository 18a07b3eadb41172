;; Engine baselines: an empty import called in a loop, an empty export.
(module
  (import "bench" "noop" (func $noop))
  (func (export "loop") (param $n i32)
    (block $done
      (loop $l
        (br_if $done (i32.eqz (local.get $n)))
        (call $noop)
        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
        (br $l))))
  (func (export "empty") (param i32) (result i32) (local.get 0))
)
