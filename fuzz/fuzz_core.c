/*  fuzz_core: CoreOrchestrator's whole request path, every action of the
 *  service and of the agents it absorbed behind the runtime's dispatcher,
 *  on a real started service with its default configuration
 *  (service_harness.h). */
#include "core/core.h"
#include "service_harness.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return harness_fuzz(&core_service, "", data, size);
}
