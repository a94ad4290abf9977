// file_check: the most common handler. Reads its settings from meta, reads
// a file in a granted directory, logs with fields, and when something is
// wrong emits an event and returns `failed` (it never traps).
//
//   "meta": {"file": "/data/status.txt", "mustContain": "OK"},
//   "grants": {"dirs": {"/data": {"path": "data", "readOnly": true}}}

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handler_wasi.h"
#include "meta.h"

static void log_checked(const char *file, long bytes, bool ok) {
    char size[24];
    snprintf(size, sizeof size, "%ld", bytes);
    heartbeat_handler_host_field_t fields[2];
    handler_wasi_string_set(&fields[0].key, "file");
    handler_wasi_string_set(&fields[0].value, file);
    handler_wasi_string_set(&fields[1].key, "bytes");
    handler_wasi_string_set(&fields[1].value, size);
    heartbeat_handler_host_list_field_t list = {fields, 2};
    handler_wasi_string_t message;
    handler_wasi_string_set(&message, "file checked");
    heartbeat_handler_host_log(ok ? HEARTBEAT_HANDLER_HOST_LEVEL_INFO : HEARTBEAT_HANDLER_HOST_LEVEL_WARN,
                               &message, &list);
}

bool exports_handler_wasi_run(handler_wasi_tick_t *tick, handler_wasi_check_t *check,
                              handler_wasi_outcome_t *ret, handler_wasi_string_t *err) {
    char meta[4096], agent[256], file[512], needle[256] = "", problem[768] = "", out[1024];
    snprintf(meta, sizeof meta, "%.*s", (int)check->meta.len, (const char *)check->meta.ptr);
    snprintf(agent, sizeof agent, "%.*s", (int)tick->agent.len, (const char *)tick->agent.ptr);
    handler_wasi_tick_free(tick);
    handler_wasi_check_free(check);
    if (!meta_string(meta, "file", file, sizeof file)) {
        handler_wasi_string_dup(err, "meta.file must be a path in a granted directory");
        return false;  // a failed run with this reason
    }
    meta_string(meta, "mustContain", needle, sizeof needle);

    long bytes = 0;
    FILE *f = fopen(file, "rb");  // not granted, missing, unreadable: an ordinary error
    if (f == NULL) {
        snprintf(problem, sizeof problem, "cannot read %s: %s", file, strerror(errno));
    } else {
        char *text = calloc(1, 1 << 20);
        bytes = text ? (long)fread(text, 1, (1 << 20) - 1, f) : 0;
        fclose(f);
        if (text == NULL || strstr(text, needle) == NULL) {
            snprintf(problem, sizeof problem, "%s does not contain \"%s\"", file, needle);
        }
        free(text);
    }
    log_checked(file, bytes, problem[0] == '\0');

    if (problem[0] != '\0') {
        char event_type[300];
        snprintf(event_type, sizeof event_type, "agent.%s.file_check", agent);
        snprintf(out, sizeof out, "{\"file\": \"");
        json_append(out, sizeof out, file, sizeof file);
        text_append(out, sizeof out, "\", \"problem\": \"");
        json_append(out, sizeof out, problem, sizeof problem);
        text_append(out, sizeof out, "\"}");
        handler_wasi_string_t type_string, payload, emit_err;
        handler_wasi_string_set(&type_string, event_type);
        handler_wasi_string_set(&payload, out);
        if (!heartbeat_handler_host_emit(&type_string, &payload, &emit_err)) {
            *err = emit_err;  // refused by the host: pass its reason on
            return false;
        }
        // The same object, with `error` for `problem`, is the failed outcome's details.
        snprintf(out, sizeof out, "{\"file\": \"");
        json_append(out, sizeof out, file, sizeof file);
        text_append(out, sizeof out, "\", \"error\": \"");
        json_append(out, sizeof out, problem, sizeof problem);
        text_append(out, sizeof out, "\"}");
        ret->status = HEARTBEAT_HANDLER_TYPES_STATUS_FAILED;
    } else {
        snprintf(out, sizeof out, "{\"file\": \"");
        json_append(out, sizeof out, file, sizeof file);
        snprintf(out + strlen(out), sizeof out - strlen(out), "\", \"bytes\": %ld}", bytes);
        ret->status = HEARTBEAT_HANDLER_TYPES_STATUS_SUCCESS;
    }
    handler_wasi_string_dup(&ret->details, out);
    return true;
}
