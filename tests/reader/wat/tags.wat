;; An exported exception tag: not a kind the host lists, skipped.
(module
  (tag $e (param i32))
  (export "e" (tag $e))
  (func $thrower (export "thrower") (param i32)
    (throw $e (local.get 0))))
