/*  fuzz_observability: ObservabilityHub's whole request path, every action
 *  of the service and of the agents it absorbed behind the runtime's
 *  dispatcher, on a real started service (service_harness.h). The peers it
 *  asks (agents to recover, memory services, the registry) are not running,
 *  so their timeouts are cut from seconds to 100 ms: otherwise two inputs
 *  in three would spend the fuzzing time waiting. */
#include "observability/observability.h"
#include "service_harness.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return harness_fuzz(&observability_service,
                        "observability:\n"
                        "  timeout_ms: 100\n"
                        "  registry_timeout_ms: 100\n"
                        "  memory_services: {timeout_ms: 100}\n"
                        "  recovery: {timeout_ms: 100}\n",
                        data, size);
}
