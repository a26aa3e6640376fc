;; echo: answers 200 with headers x-echo-method, x-echo-path (path and
;; query) and x-echo-h-<name> for every request header, then streams the
;; request body back chunk by chunk as it arrives. A body read error (e.g.
;; the node's body size limit) traps; end of stream finishes the response.
(module
  (import "wasi:http/types@0.2.12" "[constructor]fields" (func $fields_new (result i32)))
  (import "wasi:http/types@0.2.12" "[constructor]outgoing-response" (func $response_new (param i32) (result i32)))
  (import "wasi:http/types@0.2.12" "[method]outgoing-response.set-status-code" (func $set_status (param i32 i32) (result i32)))
  (import "wasi:http/types@0.2.12" "[method]outgoing-response.body" (func $response_body (param i32 i32)))
  (import "wasi:http/types@0.2.12" "[method]outgoing-body.write" (func $body_write (param i32 i32)))
  (import "wasi:http/types@0.2.12" "[static]outgoing-body.finish" (func $body_finish (param i32 i32 i32 i32)))
  (import "wasi:http/types@0.2.12" "[static]response-outparam.set" (func $outparam_set (param i32 i32 i32 i32 i64 i32 i32 i32 i32)))
  (import "wasi:http/types@0.2.12" "[resource-drop]incoming-request" (func $drop_request (param i32)))
  (import "wasi:io/streams@0.2.12" "[method]output-stream.blocking-write-and-flush" (func $write_flush (param i32 i32 i32 i32)))
  (import "wasi:io/streams@0.2.12" "[resource-drop]output-stream" (func $drop_stream (param i32)))
  (import "wasi:http/types@0.2.12" "[method]incoming-request.method" (func $req_method (param i32 i32)))
  (import "wasi:http/types@0.2.12" "[method]incoming-request.path-with-query" (func $req_path (param i32 i32)))
  (import "wasi:http/types@0.2.12" "[method]incoming-request.headers" (func $req_headers (param i32) (result i32)))
  (import "wasi:http/types@0.2.12" "[method]incoming-request.consume" (func $req_consume (param i32 i32)))
  (import "wasi:http/types@0.2.12" "[method]fields.entries" (func $fields_entries (param i32 i32)))
  (import "wasi:http/types@0.2.12" "[method]fields.append" (func $fields_append (param i32 i32 i32 i32 i32 i32)))
  (import "wasi:http/types@0.2.12" "[resource-drop]fields" (func $drop_fields (param i32)))
  (import "wasi:http/types@0.2.12" "[method]incoming-body.stream" (func $ibody_stream (param i32 i32)))
  (import "wasi:http/types@0.2.12" "[resource-drop]incoming-body" (func $drop_ibody (param i32)))
  (import "wasi:io/streams@0.2.12" "[method]input-stream.blocking-read" (func $blocking_read (param i32 i64 i32)))
  (import "wasi:io/streams@0.2.12" "[resource-drop]input-stream" (func $drop_istream (param i32)))
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 8192))   ;; bump allocator start
  (global $RET i32 (i32.const 1024))           ;; return areas, 8-aligned
  (global $RET2 i32 (i32.const 1088))

  ;; cabi_realloc(old_ptr, old_len, align, new_len) -> ptr: a bump allocator
  ;; that never frees (echo rewinds it after each chunk).
  (func $realloc (export "cabi_realloc") (param $old i32) (param $old_len i32) (param $align i32) (param $new_len i32) (result i32)
    (local $ptr i32)
    (local.set $ptr (i32.and (i32.add (global.get $heap) (i32.sub (local.get $align) (i32.const 1)))
                             (i32.sub (i32.const 0) (local.get $align))))
    (global.set $heap (i32.add (local.get $ptr) (local.get $new_len)))
    (if (i32.gt_u (global.get $heap) (i32.mul (memory.size) (i32.const 65536)))
      (then (if (i32.eq (memory.grow (i32.add (i32.shr_u (i32.sub (global.get $heap)
                            (i32.mul (memory.size) (i32.const 65536))) (i32.const 16)) (i32.const 1)))
                        (i32.const -1))
              (then unreachable))))
    (if (local.get $old_len)
      (then (memory.copy (local.get $ptr) (local.get $old)
              (select (local.get $old_len) (local.get $new_len) (i32.lt_u (local.get $old_len) (local.get $new_len))))))
    (local.get $ptr))

  (data (i32.const 200) "\90\01\00\00\03\00\00\00\93\01\00\00\04\00\00\00\97\01\00\00\04\00\00\00\9b\01\00\00\03\00\00\00\9e\01\00\00\06\00\00\00\a4\01\00\00\07\00\00\00\ab\01\00\00\07\00\00\00\b2\01\00\00\05\00\00\00\b7\01\00\00\05\00\00\00")     ;; (ptr, len) of each method name, by discriminant
  (data (i32.const 300) "x-echo-method")
  (data (i32.const 320) "x-echo-path")
  (data (i32.const 360) "x-echo-h-")
  (data (i32.const 400) "GETHEADPOSTPUTDELETECONNECTOPTIONSTRACEPATCH")

  (func (export "wasi:http/incoming-handler@0.2.12#handle") (param $req i32) (param $out i32)
    (local $resp i32) (local $body i32) (local $stream i32)
    (local $fields i32) (local $disc i32) (local $mptr i32) (local $mlen i32)
    (local $hdrs i32) (local $list i32) (local $n i32) (local $i i32) (local $e i32) (local $nlen i32) (local $buf i32)
    (local $ibody i32) (local $istream i32) (local $mark i32) (local $len i32)
    (local.set $fields (call $fields_new))

    ;; x-echo-method: a known method by discriminant, or other(string)
    (call $req_method (local.get $req) (global.get $RET))
    (local.set $disc (i32.load8_u (global.get $RET)))
    (if (i32.eq (local.get $disc) (i32.const 9))
      (then
        (local.set $mptr (i32.load offset=4 (global.get $RET)))
        (local.set $mlen (i32.load offset=8 (global.get $RET))))
      (else
        (local.set $mptr (i32.load (i32.add (i32.const 200) (i32.shl (local.get $disc) (i32.const 3)))))
        (local.set $mlen (i32.load offset=4 (i32.add (i32.const 200) (i32.shl (local.get $disc) (i32.const 3)))))))
    (call $fields_append (local.get $fields) (i32.const 300) (i32.const 13) (local.get $mptr) (local.get $mlen) (global.get $RET2))

    ;; x-echo-path: option<string>
    (call $req_path (local.get $req) (global.get $RET))
    (if (i32.load8_u (global.get $RET))
      (then
        (call $fields_append (local.get $fields) (i32.const 320) (i32.const 11)
          (i32.load offset=4 (global.get $RET)) (i32.load offset=8 (global.get $RET)) (global.get $RET2))))

    ;; x-echo-h-<name>: every request header; entries are 16-byte (name, value) pairs
    (local.set $hdrs (call $req_headers (local.get $req)))
    (call $fields_entries (local.get $hdrs) (global.get $RET))
    (local.set $list (i32.load (global.get $RET)))
    (local.set $n (i32.load offset=4 (global.get $RET)))
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
      (local.set $e (i32.add (local.get $list) (i32.shl (local.get $i) (i32.const 4))))
      (local.set $nlen (i32.load offset=4 (local.get $e)))
      (local.set $buf (call $realloc (i32.const 0) (i32.const 0) (i32.const 1) (i32.add (local.get $nlen) (i32.const 9))))
      (memory.copy (local.get $buf) (i32.const 360) (i32.const 9))
      (memory.copy (i32.add (local.get $buf) (i32.const 9)) (i32.load (local.get $e)) (local.get $nlen))
      (call $fields_append (local.get $fields) (local.get $buf) (i32.add (local.get $nlen) (i32.const 9))
        (i32.load offset=8 (local.get $e)) (i32.load offset=12 (local.get $e)) (global.get $RET2))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $next)))
    (call $drop_fields (local.get $hdrs))

    ;; the request body's stream
    (call $req_consume (local.get $req) (global.get $RET))
    (if (i32.load8_u (global.get $RET)) (then unreachable))
    (local.set $ibody (i32.load offset=4 (global.get $RET)))
    (call $ibody_stream (local.get $ibody) (global.get $RET))
    (if (i32.load8_u (global.get $RET)) (then unreachable))
    (local.set $istream (i32.load offset=4 (global.get $RET)))

    ;; send the headers now, then copy the body across as it arrives
    (local.set $resp (call $response_new (local.get $fields)))
    (if (call $set_status (local.get $resp) (i32.const 200)) (then unreachable))
    (call $response_body (local.get $resp) (global.get $RET))
    (if (i32.load8_u (global.get $RET)) (then unreachable))
    (local.set $body (i32.load offset=4 (global.get $RET)))
    (call $outparam_set (local.get $out) (i32.const 0) (local.get $resp)
      (i32.const 0) (i64.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0))
    (call $body_write (local.get $body) (global.get $RET))
    (if (i32.load8_u (global.get $RET)) (then unreachable))
    (local.set $stream (i32.load offset=4 (global.get $RET)))
    (block $eof (loop $copy
      (local.set $mark (global.get $heap))
      ;; result<list<u8>, stream-error>: ok list at +4/+8; error case at +4: 1 = closed
      (call $blocking_read (local.get $istream) (i64.const 4096) (global.get $RET))
      (if (i32.load8_u (global.get $RET))
        (then
          (br_if $eof (i32.eq (i32.load8_u offset=4 (global.get $RET)) (i32.const 1)))
          unreachable))
      (local.set $len (i32.load offset=8 (global.get $RET)))
      (if (local.get $len)
        (then
          (call $write_flush (local.get $stream) (i32.load offset=4 (global.get $RET)) (local.get $len) (global.get $RET2))
          (if (i32.load8_u (global.get $RET2)) (then unreachable))))
      (global.set $heap (local.get $mark))
      (br $copy)))
    (call $drop_istream (local.get $istream))
    (call $drop_ibody (local.get $ibody))
    (call $drop_request (local.get $req))
    (call $drop_stream (local.get $stream))
    (call $body_finish (local.get $body) (i32.const 0) (i32.const 0) (global.get $RET))
    (if (i32.load8_u (global.get $RET)) (then unreachable))
  )
)
