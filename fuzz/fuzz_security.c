/*  fuzz_security: SecurityGateway's whole request path, every action of
 *  AuthenticationAgent and AgentTrustScorer behind the runtime's
 *  dispatcher, on a real started service (service_harness.h).  Argon2 runs
 *  at its minimum cost so a login takes microseconds instead of a tenth of
 *  a second, and registration is on, so the fuzzer can make users and then
 *  log in, validate and log out with what it learns. */
#include "security/security.h"
#include "service_harness.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return harness_fuzz(&security_service,
                        "security:\n"
                        "  allow_registration: true\n"
                        "  argon2: {opslimit: 1, memlimit_kib: 8}\n",
                        data, size);
}
