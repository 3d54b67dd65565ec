//! The response-phase checks and the report (plugin.go: OnResponse).

use wedge::{abi, hostcall};

use crate::*;

impl Kit {
    /// The response-phase checks, then the report as the response body.
    pub(crate) fn on_response(&mut self) -> i32 {
        let (req, resp) = (abi::MSG_REQUEST, abi::MSG_RESPONSE);
        self.eq("status_get", "origin status", hostcall::status_get(), ORIGIN_STATUS);
        let (got, _) = read(64, |buf| hostcall::body_read(resp, 0, buf));
        self.eq_bytes("body_read", "origin body", &got, ORIGIN_BODY);
        let (v, _) = read(64, |buf| hostcall::header_get(resp, b"X-Origin", buf));
        self.eq_bytes("header_get", "origin header", &v, "yes");
        let (v, _) = read(64, |buf| hostcall::header_get(resp, b"X-From-Request", buf));
        self.eq_bytes("header_get", "request-phase response header reached the response", &v, "yes");
        let (v, _) = read(64, |buf| hostcall::value_get(b"tck.v", buf));
        self.eq_bytes("value_get", "request-phase value in the response phase", &v, "2");
        let (v, _) = read(64, |buf| hostcall::field_get(abi::FIELD_PATH, buf));
        self.eq_bytes("field_get", "rewritten path in the response phase", &v, REWRITTEN_PATH);

        let phase = abi::ERR_PHASE;
        self.errno("field_set", "in response", hostcall::field_set(abi::FIELD_PATH, b"/x"), phase);
        self.errno("header_set", "request header in response", hostcall::header_set(req, b"A", b"b"), phase);
        self.errno("header_add", "request header in response", hostcall::header_add(req, b"A", b"b"), phase);
        self.errno("header_remove", "request header in response", hostcall::header_remove(req, b"Accept"), phase);
        self.errno("body_set", "request body in response", hostcall::body_set(req, b"x"), phase);
        self.eq("header_set", "response header in response", hostcall::header_set(resp, b"X-Response-Phase", b"yes"), 0);
        self.eq("header_remove", "response header in response", hostcall::header_remove(resp, b"X-Origin"), 0);

        self.response_cache();

        self.eq("status_set", "299", hostcall::status_set(FINAL_STATUS), 0);
        self.eq("status_get", "reads back", hostcall::status_get(), FINAL_STATUS);
        // The count includes this check and the two lines added below.
        let count = (self.lines.len() + 3) as f64;
        self.eq("metric_record", "counter", hostcall::metric_record(self.counter, count), 0);
        let mut report = self.lines.join("\n");
        report.push_str("\nPASS body_set: response body\nPASS metric_record: counter counts every check\n");
        self.lines.clear();
        let r = hostcall::body_set(resp, report.as_bytes());
        if r != 0 {
            hostcall::error_set(format!("tck: body_set of the report: {}", errno_name(r)).as_bytes());
            return abi::ACTION_FAIL;
        }
        abi::ACTION_CONTINUE
    }

    fn response_cache(&mut self) {
        let key = CACHE_KEY.as_bytes();
        let (inv, big) = (abi::ERR_INVALID, abi::ERR_TOO_LARGE);
        let info_size = abi::CACHE_INFO_SIZE as usize;
        self.eq("cache_store", "origin response", hostcall::cache_store(key, CACHE_META.as_bytes(), 60000, 5000, b"t1\0t2\0"), 0);
        let (info, n) = read(64, |buf| hostcall::cache_lookup(key, buf));
        self.eq("cache_lookup", "returns info plus metadata", n, (info_size + CACHE_META.len()) as i32);
        if info.len() >= info_size {
            let at = |i: usize| i64::from_le_bytes(info[i..i + 8].try_into().unwrap_or_default());
            let (age, ttl) = (at(0), at(8));
            let ok = (0..10000).contains(&age) && ttl > 50000 && ttl <= 60000;
            self.check("cache_lookup", "age and freshness", ok, format_args!("{{AgeMs:{} TTLMs:{}}}", age, ttl));
            self.eq_bytes("cache_lookup", "metadata", &info[info_size..], CACHE_META);
        }
        self.eq("cache_lookup", "probe", hostcall::cache_lookup(key, &mut []), (info_size + CACHE_META.len()) as i32);
        self.eq("cache_serve", "serves the stored response", hostcall::cache_serve(key), ORIGIN_STATUS);
        let (got, _) = read(64, |buf| hostcall::body_read(abi::MSG_RESPONSE, 0, buf));
        self.eq_bytes("cache_serve", "stored body", &got, ORIGIN_BODY);

        self.errno("cache_store", "negative TTL", hostcall::cache_store(b"k", b"", -1, 0, b""), inv);
        self.errno("cache_store", "empty key", hostcall::cache_store(b"", b"", 1000, 0, b""), inv);
        self.errno("cache_store", "empty tag", hostcall::cache_store(b"k", b"", 1000, 0, b"\0"), inv);
        self.errno("cache_store", "key of 5 KiB", hostcall::cache_store(&[0; 5 << 10], b"", 1000, 0, b""), big);
        let meta = vec![0; abi::MAX_CACHE_META_LEN as usize + 1];
        self.errno("cache_store", "metadata past the limit", hostcall::cache_store(b"k", &meta, 1000, 0, b""), big);
        let tags = b"t\0".repeat(abi::MAX_TAGS as usize + 1);
        self.errno("cache_store", "33 tags", hostcall::cache_store(b"k", b"", 1000, 0, &tags), big);

        for k in ["tck-p1", "tck-p2"] {
            hostcall::cache_store(k.as_bytes(), b"", 60000, 0, b"purge-me\0");
        }
        self.eq("cache_purge", "by tag", hostcall::cache_purge(abi::PURGE_TAG, b"purge-me"), 2);
        self.errno("cache_lookup", "purged entry", hostcall::cache_lookup(b"tck-p1", &mut []), abi::ERR_NOT_FOUND);
        hostcall::cache_store(b"tck-p3", b"", 60000, 0, b"");
        self.eq("cache_purge", "by key", hostcall::cache_purge(abi::PURGE_KEY, b"tck-p3"), 1);
        self.eq("cache_purge", "by key, again", hostcall::cache_purge(abi::PURGE_KEY, b"tck-p3"), 0);
        self.errno("cache_revalidate", "in response", hostcall::cache_revalidate(key), abi::ERR_PHASE);
        self.errno("cache_request", "in response", hostcall::cache_request(b"tck"), abi::ERR_PHASE);
        self.errno("cache_response", "a name that is not a token", hostcall::cache_response(b"a b", 0), inv);
        self.errno("cache_response", "an unknown option", hostcall::cache_response(b"tck", 1 << 7), inv);

        self.ranges(key);
    }

    /// Checks range_apply on the stored response (ORIGIN_BODY, 11 bytes),
    /// made a 200 first: ranges apply to a 200 only.
    fn ranges(&mut self, key: &[u8]) {
        hostcall::cache_serve(key);
        self.eq("range_apply", "a 201 is left alone", hostcall::range_apply(b"bytes=0-5"), ORIGIN_STATUS);
        let header = |name: &str| read(64, |buf| hostcall::header_get(abi::MSG_RESPONSE, name.as_bytes(), buf)).0;
        for (value, status, body, c_range) in [
            ("bytes=0-5", 206, "origin", "bytes 0-5/11"),
            ("bytes=-4", 206, "body", "bytes 7-10/11"),
            ("BYTES=7-", 206, "body", "bytes 7-10/11"),
            ("bytes=11-", 416, "", "bytes */11"),
            ("bytes=0-1,3-4", 200, ORIGIN_BODY, ""),
            ("items=0-1", 200, ORIGIN_BODY, ""),
            ("bytes=5-2", 200, ORIGIN_BODY, ""),
        ] {
            hostcall::cache_serve(key);
            hostcall::status_set(200);
            self.eq("range_apply", value, hostcall::range_apply(value.as_bytes()), status);
            let (got, _) = read(64, |buf| hostcall::body_read(abi::MSG_RESPONSE, 0, buf));
            self.eq_bytes("range_apply", &format!("{}: body", value), &got, body);
            let cr = header("Content-Range");
            self.check("range_apply", &format!("{}: Content-Range", value), cr == c_range.as_bytes(), format_args!("{}", q(&cr)));
            self.eq("range_apply", &format!("{}: status_get agrees", value), hostcall::status_get(), status);
        }
        hostcall::cache_serve(key);
        let (got, _) = read(64, |buf| hostcall::body_read(abi::MSG_RESPONSE, 0, buf));
        self.eq_bytes("range_apply", "the stored body stays whole", &got, ORIGIN_BODY);
        let cr = header("Content-Range");
        self.check("range_apply", "the stored response has no Content-Range", cr.is_empty(), format_args!("{}", q(&cr)));
    }
}
