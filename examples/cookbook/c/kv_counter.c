// kv_counter: counts its check's runs in the check's key-value store
// (heartbeat:handler/kv), which outlives the run and the host's restarts.
// Over the store's cap (maxKvBytes) kv-set returns false with the host's
// reason: passed on, the run fails with it.

#include <stdio.h>
#include <stdlib.h>

#include "handler_wasi.h"

bool exports_handler_wasi_run(handler_wasi_tick_t *tick, handler_wasi_check_t *check,
                              handler_wasi_outcome_t *ret, handler_wasi_string_t *err) {
    handler_wasi_string_t key, value;
    handler_wasi_option_string_t stored;
    handler_wasi_string_set(&key, "runs");
    if (!heartbeat_handler_kv_kv_get(&key, &stored, err)) {
        goto failed;
    }
    long runs = 1;
    if (stored.is_some) {  // none when never set
        char text[32];
        snprintf(text, sizeof text, "%.*s", (int)stored.val.len, (const char *)stored.val.ptr);
        runs = strtol(text, NULL, 10) + 1;
        handler_wasi_string_free(&stored.val);
    }
    char text[32];
    snprintf(text, sizeof text, "%ld", runs);
    handler_wasi_string_set(&value, text);
    if (!heartbeat_handler_kv_kv_set(&key, &value, err)) {
        goto failed;
    }
    handler_wasi_string_set(&key, "lastTick");
    if (!heartbeat_handler_kv_kv_set(&key, &tick->id, err)) {
        goto failed;
    }
    handler_wasi_tick_free(tick);
    handler_wasi_check_free(check);
    char details[64];
    snprintf(details, sizeof details, "{\"runs\": %ld}", runs);
    ret->status = HEARTBEAT_HANDLER_TYPES_STATUS_SUCCESS;
    handler_wasi_string_dup(&ret->details, details);
    return true;
failed:  // *err holds the host's reason
    handler_wasi_tick_free(tick);
    handler_wasi_check_free(check);
    return false;
}
