// The no-op handler in C: the per-run cost of wasi-libc and the adapter.
#include "handler.h"

bool exports_handler_run(handler_tick_t *tick, handler_check_t *check, handler_outcome_t *ret,
                         handler_string_t *err) {
    (void)err;
    handler_tick_free(tick);
    handler_check_free(check);
    ret->status = HEARTBEAT_HANDLER_TYPES_STATUS_SUCCESS;
    handler_string_dup(&ret->details, "{}");
    return true;
}
