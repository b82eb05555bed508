;; The demo app's Wasm Worker, in WebAssembly text so that it needs no toolchain.
;; Build workers/hello_wasm.wasm from it with the one-liner in docs/wasm.md.
;;
;; It is a WASI preview 1 command (CGI contract): the request arrives as environment
;; variables (PATH_INFO, ...) and stdin, the response leaves on stdout as headers, a blank
;; line and the body. It also uses three edgelet host functions: var_get for the GREETING
;; var, kv_get/kv_put to remember the previous path in the STATE KV namespace.
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_sizes_get" (func $environ_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_get" (func $environ_get (param i32 i32) (result i32)))
  (import "edgelet" "var_get" (func $var_get (param i32 i32 i32) (result i32)))
  (import "edgelet" "kv_get" (func $kv_get (param i32 i32 i32 i32 i32) (result i32)))
  (import "edgelet" "kv_put" (func $kv_put (param i32 i32 i32 i32 i32 i32 i32) (result i32)))

  ;; 0: iovec, 16: result slot (ptr, len), 24: environ sizes, 1024: strings,
  ;; 4096: environ pointers, 16384: environ strings, 65536..: heap for alloc
  (memory (export "memory") 2)
  (data (i32.const 1024) "Content-Type: text/plain;charset=UTF-8\0a\0a")
  (data (i32.const 1065) "GREETING")
  (data (i32.const 1074) "Hello")
  (data (i32.const 1080) " from a Wasm Worker! You asked for ")
  (data (i32.const 1116) "PATH_INFO=")
  (data (i32.const 1127) "/")
  (data (i32.const 1129) ".\0a")
  (data (i32.const 1132) "STATE")
  (data (i32.const 1138) "last-path")
  (data (i32.const 1148) "The request before that was for ")
  (data (i32.const 1181) "hello-wasm served a request\0a")
  (global $heap (mut i32) (i32.const 65536))
  (global $vlen (mut i32) (i32.const 0))

  ;; edgelet calls this to hand back a buffer (kv_get, var_get): a bump allocator
  (func $alloc (export "alloc") (param $n i32) (result i32)
    (local $p i32) (local $end i32) (local $have i32)
    (local.set $p (global.get $heap))
    (local.set $end (i32.and (i32.add (i32.add (local.get $p) (local.get $n)) (i32.const 7)) (i32.const -8)))
    (local.set $have (i32.shl (memory.size) (i32.const 16)))
    (if (i32.gt_u (local.get $end) (local.get $have))
      (then
        (if (i32.eq (memory.grow (i32.add (i32.shr_u (i32.sub (local.get $end) (local.get $have)) (i32.const 16)) (i32.const 1))) (i32.const -1))
          (then (return (i32.const 0))))))
    (global.set $heap (local.get $end))
    (local.get $p))

  (func $out (param $fd i32) (param $p i32) (param $n i32)
    (i32.store (i32.const 0) (local.get $p))
    (i32.store (i32.const 4) (local.get $n))
    (drop (call $fd_write (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 8))))

  (func $write (param $p i32) (param $n i32) (call $out (i32.const 1) (local.get $p) (local.get $n)))

  ;; the value of the environment entry starting with "NAME=" (0 if none); its length in $vlen
  (func $getenv (param $name i32) (param $nlen i32) (result i32)
    (local $count i32) (local $i i32) (local $s i32) (local $j i32)
    (drop (call $environ_sizes_get (i32.const 24) (i32.const 28)))
    (local.set $count (i32.load (i32.const 24)))
    (drop (call $environ_get (i32.const 4096) (i32.const 16384)))
    (block $none
      (loop $each
        (br_if $none (i32.ge_u (local.get $i) (local.get $count)))
        (local.set $s (i32.load (i32.add (i32.const 4096) (i32.shl (local.get $i) (i32.const 2)))))
        (local.set $j (i32.const 0))
        (block $differs
          (loop $cmp
            (if (i32.eq (local.get $j) (local.get $nlen))
              (then
                ;; found: measure the value up to its NUL
                (local.set $s (i32.add (local.get $s) (local.get $nlen)))
                (local.set $j (i32.const 0))
                (block $end
                  (loop $len
                    (br_if $end (i32.eqz (i32.load8_u (i32.add (local.get $s) (local.get $j)))))
                    (local.set $j (i32.add (local.get $j) (i32.const 1)))
                    (br $len)))
                (global.set $vlen (local.get $j))
                (return (local.get $s))))
            (br_if $differs (i32.ne (i32.load8_u (i32.add (local.get $s) (local.get $j)))
                                    (i32.load8_u (i32.add (local.get $name) (local.get $j)))))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br $cmp)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $each)))
    (i32.const 0))

  (func (export "_start") (local $path i32) (local $plen i32)
    (call $write (i32.const 1024) (i32.const 40))
    (if (i32.eqz (call $var_get (i32.const 1065) (i32.const 8) (i32.const 16)))
      (then (call $write (i32.load (i32.const 16)) (i32.load (i32.const 20))))
      (else (call $write (i32.const 1074) (i32.const 5))))
    (call $write (i32.const 1080) (i32.const 35))
    (local.set $path (call $getenv (i32.const 1116) (i32.const 10)))
    (local.set $plen (global.get $vlen))
    (if (i32.eqz (local.get $path))
      (then (local.set $path (i32.const 1127)) (local.set $plen (i32.const 1))))
    (call $write (local.get $path) (local.get $plen))
    (call $write (i32.const 1129) (i32.const 2))
    (if (i32.eqz (call $kv_get (i32.const 1132) (i32.const 5) (i32.const 1138) (i32.const 9) (i32.const 16)))
      (then
        (call $write (i32.const 1148) (i32.const 32))
        (call $write (i32.load (i32.const 16)) (i32.load (i32.const 20)))
        (call $write (i32.const 1129) (i32.const 2))))
    (drop (call $kv_put (i32.const 1132) (i32.const 5) (i32.const 1138) (i32.const 9) (local.get $path) (local.get $plen) (i32.const 0)))
    (call $out (i32.const 2) (i32.const 1181) (i32.const 28))))
