/*  fuzz_errorbus: ErrorBus's whole request path, every action of the
 *  service and of the agents it absorbed behind the runtime's dispatcher,
 *  on a real started service with its default configuration
 *  (service_harness.h). */
#include "errorbus/errorbus.h"
#include "service_harness.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return harness_fuzz(&errorbus_service, "", data, size);
}
