;; Memory descriptors with every limits flag, each followed by a function
;; import that parses only if the descriptor before it was skipped right.
(module
  (import "env" "mem64" (memory i64 1 281474976710656))
  (import "env" "f1" (func (param i32) (result i32)))
  (import "env" "shared" (memory 1 16 shared))
  (import "env" "f2" (func (param i64)))
  (import "env" "nomax" (memory 300))
  (import "env" "f3" (func (result f64)))
  (import "env" "tbl" (table 1 1000000 externref))
  (import "env" "f4" (func)))
