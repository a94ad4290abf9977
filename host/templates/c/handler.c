// @@name@@: a heartbeat-host check handler in C.
//
// exports_handler_run is called once per run of a check that names this
// handler, in a fresh sandboxed instance. check->meta is the check's `meta`
// object from heartbeat.json, as JSON text (not NUL-terminated: WIT strings
// are pointer + length). The types and host functions come from
// gen/handler.h, which build.sh generates from wit/handler.wit.
//
// Ownership: tick and check belong to this function (free them); strings
// put into *ret or *err must be malloc'd (handler_string_dup does that):
// the generated glue frees them after the host has read them.

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handler.h"

bool exports_handler_run(handler_tick_t *tick, handler_check_t *check, handler_outcome_t *ret,
                         handler_string_t *err) {
    char text[512];

    snprintf(text, sizeof text, "%.*s runs on tick %.*s", (int)check->name.len,
             (const char *)check->name.ptr, (int)tick->id.len, (const char *)tick->id.ptr);
    handler_string_t message;
    handler_string_dup(&message, text);
    heartbeat_handler_host_list_field_t no_fields = {NULL, 0};
    heartbeat_handler_host_log(HEARTBEAT_HANDLER_HOST_LEVEL_INFO, &message, &no_fields);
    handler_string_free(&message);

    // Events go to the agent's bus; a check may emit under `agent.<agent>.`
    // unless it is granted more.
    handler_string_t event_type, payload, emit_err;
    snprintf(text, sizeof text, "agent.%.*s.@@name@@", (int)tick->agent.len,
             (const char *)tick->agent.ptr);
    handler_string_dup(&event_type, text);
    snprintf(text, sizeof text, "{\"metaBytes\": %zu}", check->meta.len);
    handler_string_dup(&payload, text);
    bool emitted = heartbeat_handler_host_emit(&event_type, &payload, &emit_err);
    handler_string_free(&event_type);
    handler_string_free(&payload);

    handler_tick_free(tick);
    handler_check_free(check);
    if (!emitted) {
        // Returning false with *err set makes the run `failed` with that reason.
        *err = emit_err;
        return false;
    }
    // success / skipped move the check's lastRun; failed backs it off.
    ret->status = HEARTBEAT_HANDLER_TYPES_STATUS_SUCCESS;
    handler_string_dup(&ret->details, "{\"emitted\": 1}");
    return true;
}
