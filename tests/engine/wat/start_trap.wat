;; A start function that traps: instantiation must fail.
(module
  (func $boom (unreachable))
  (start $boom))
