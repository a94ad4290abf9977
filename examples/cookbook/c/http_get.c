// http_get: GETs meta.url (its origin granted in grants.http), with the
// token of grants.env (API_TOKEN) when the check has one, and reports the
// status and the start of the body; a refused or failed request is a
// `failed` outcome naming the WASI error code. C speaks HTTP through
// wasi:http (heartbeat_http.c, from `heartbeat-host new --lang c`): the
// WASI preview1 libc has no sockets.
//
//   "meta": {"url": "http://127.0.0.1:8080/health"},
//   "grants": {"http": ["http://127.0.0.1:8080"], "env": ["API_TOKEN"]}

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handler_wasi.h"
#include "heartbeat_http.h"
#include "meta.h"

bool exports_handler_wasi_run(handler_wasi_tick_t *tick, handler_wasi_check_t *check,
                              handler_wasi_outcome_t *ret, handler_wasi_string_t *err) {
    char meta[4096], url[512], authorization[300] = "", out[1024] = "";
    snprintf(meta, sizeof meta, "%.*s", (int)check->meta.len, (const char *)check->meta.ptr);
    handler_wasi_tick_free(tick);
    handler_wasi_check_free(check);
    if (!meta_string(meta, "url", url, sizeof url)) {
        handler_wasi_string_dup(err, "meta.url must be an http:// or https:// URL");
        return false;
    }
    const char *token = getenv("API_TOKEN");  // present only when granted
    if (token != NULL) {
        snprintf(authorization, sizeof authorization, "Bearer %s", token);
    }
    const char *const headers[][2] = {{"authorization", authorization}, {NULL, NULL}};

    heartbeat_http_response_t response;
    if (!heartbeat_http_request("GET", url, token ? headers : NULL, NULL, 0, 5000, &response)) {
        // response.error: HTTP-request-denied, connection-refused, ...
        text_append(out, sizeof out, "{\"error\": \"GET ");
        json_append(out, sizeof out, response.url, sizeof response.url);
        text_append(out, sizeof out, ": ");
        json_append(out, sizeof out, response.error, sizeof response.error);
        text_append(out, sizeof out, "\", \"code\": \"");
        json_append(out, sizeof out, response.error, sizeof response.error);
        text_append(out, sizeof out, "\"}");
        ret->status = HEARTBEAT_HANDLER_TYPES_STATUS_FAILED;
    } else {
        snprintf(out, sizeof out, "{\"status\": %d, \"tokenSent\": %s, \"excerpt\": \"",
                 response.status, token ? "true" : "false");
        json_append(out, sizeof out, response.body, 200);
        text_append(out, sizeof out, "\"}");
        ret->status = response.status < 400 ? HEARTBEAT_HANDLER_TYPES_STATUS_SUCCESS
                                            : HEARTBEAT_HANDLER_TYPES_STATUS_FAILED;
    }
    heartbeat_http_response_free(&response);
    handler_wasi_string_dup(&ret->details, out);
    return true;
}
