/*  configkeys: see configkeys.h.  The table is plain data, one line per
 *  key, grouped as the documentation shows it; every default equals the
 *  fallback its reader passes (a test compares them), so the table and the
 *  code never tell two stories. */
#include "configkeys.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define AGENTS "ServiceRegistry|SystemDigitalTwin|RequestCoordinator|UnifiedSystemAgent|" \
               "ResourceManager|TaskScheduler|AsyncProcessor|VRAMOptimizerAgent|" \
               "PerformanceMonitor|HealthMonitor|PerformanceLoggerAgent|SystemHealthManager|" \
               "PredictiveHealthMonitor|ErrorBusService|ErrorManagementSystem|UnifiedErrorAgent|" \
               "AuthenticationAgent|AgentTrustScorer"

static const configkey_t keys[] = {
    /* name, type, default, range, meaning */
    /* ---- every service ---- */
    { "bind", CK_STRING, "127.0.0.1", NULL, "Address every Keel port listens on: 127.0.0.1 for one machine, 0.0.0.0 for every interface (environment KEEL_BIND)." },
    { "port_offset", CK_INTEGER, "0", "0..38533", "Added to every Keel port and to the built-in endpoints of Keel services, so several instances can run on one host; the highest port, 27002 + offset, must stay below 65536 (environment PORT_OFFSET, flag --port-offset)." },
    { "data_dir", CK_STRING, "./var/keel", NULL, "Directory holding each service's databases (one subdirectory per service, each locked while its service runs) and, by default, keel.log (environment KEEL_DATA_DIR, flag --data-dir)." },
    { "log_level", CK_STRING, "info", "debug|info|warn|warning|error", "Lowest level written to stderr and to the log file (environment KEEL_LOG_LEVEL)." },
    { "log_file", CK_STRING, "", NULL, "The JSON log, one object per line, reopened on SIGHUP for logrotate; empty: <data_dir>/keel.log; \"none\": no file." },
    { "loop_stall_s", CK_NUMBER, "30", "1..3600", "A service loop (a wire thread or worker, a health sweep) that has not come round for this many seconds beyond its own interval counts as stalled, and keeld stops feeding systemd's watchdog." },
    { "legacy_ports", CK_BOOLEAN, "false", NULL, "Also listen on the fifteen absorbed agents' old ports (moved by port_offset), so unchanged agents that dial them reach Keel." },
    { "metrics_source", CK_STRING, "real", "real|mock", "real: system figures from /proc and NVML; mock: the original agents' constant figures, for tests." },
    { "error_bus_endpoint", CK_STRING, "", NULL, "Where every service publishes its own errors; empty: the local ErrorBus ingress, tcp://<bind>:7150 + port_offset." },
    { "registry_endpoint", CK_STRING, "", NULL, "CoreOrchestrator every service registers its names with and the hub reads agents from; empty: the local one, tcp://127.0.0.1:7000 + port_offset." },
    { "advertise_host", CK_STRING, "", NULL, "Host written into the registry for this machine's Keel names, so agents on the other machine can reach them; empty: bind, or the host name when bind is 0.0.0.0." },
    { "secure_zmq", CK_BOOLEAN, "false", NULL, "CURVE encryption and authentication on every ZMQ socket, keys from certificates_dir (environment SECURE_ZMQ=1)." },
    { "agent_curve", CK_BOOLEAN, "false", NULL, "With secure_zmq: CURVE on the sockets the kept agents use too (the absorbed agents' old ports, the error bus, probes and calls to agents). Off: the kept agents never turn CURVE on (their secure_zmq.py hands every socket back unchanged), so those stay plaintext and trusted_sources guards them." },
    { "trusted_sources", CK_STRINGS, "[\"127.0.0.0/8\", \"::1\"]", NULL, "Addresses and CIDRs whose plaintext requests may use the routes of privilege agent (the state changes the kept agents make: registration, error reports, telemetry); CURVE clients may anyway, and administrators' tokens open every route. List both machines on the two-machine layout without CURVE." },
    { "certificates_dir", CK_STRING, "./certificates", NULL, "Directory of the CURVE key pairs made by keelctl certs generate." },
    { "max_request_bytes", CK_INTEGER, "1048576", "1024..268435456", "Largest request frame a service parses; a larger one gets {\"status\":\"error\",\"error\":\"Request too large\"}." },
    { "http", CK_MAPPING, NULL, NULL, "Every service's HTTP port, as hostile clients find it." },
    { "http.max_connections", CK_INTEGER, "1000", "1..1048576", "Connections open at once, all client addresses together." },
    { "http.max_connections_per_address", CK_INTEGER, "64", "1..1048576", "Connections open at once from one client address." },
    { "http.request_deadline_s", CK_INTEGER, "10", "1..3600", "Seconds to receive one whole request, headers and body, from its first byte; a client trickling bytes cannot extend it." },
    { "http.max_body_bytes", CK_INTEGER, "65536", "1024..1073741824", "Largest request body of a route that declares no limit of its own; refused from the headers (413)." },
    { "http.workers", CK_INTEGER, "4", "1..64", "Threads that check tokens and run handlers, at most, started as requests find every one busy; apart from the one that reads and writes the connections." },
    { "http.allowed_hosts", CK_STRINGS, "[]", NULL, "Host names the dashboard answers besides its own addresses, localhost, 127.0.0.1 and [::1] (against DNS rebinding)." },
    /* ---- CoreOrchestrator ---- */
    { "core", CK_MAPPING, NULL, NULL, "CoreOrchestrator: ServiceRegistry, SystemDigitalTwin, RequestCoordinator, UnifiedSystemAgent." },
    { "core.advertise_host", CK_STRING, "", NULL, "The earlier home of advertise_host, still read when advertise_host is empty." },
    { "core.aliases", CK_MAPPING, "{\"MemoryOrchestrator\": [\"MemoryOrchestratorService\"], \"GOT_TOTAgent\": [\"GoTToTAgent\"], \"StreamingTTSAgent\": [\"StreamingTtsAgent\"]}", NULL, "Other names a lookup tries, in order, after the name asked for: the coordinator's names of downstream agents mapped to the names those agents register under (from the startup configurations)." },
    { "core.aliases.*", CK_STRINGS, NULL, NULL, "The names tried for one looked-up name." },
    { "core.location", CK_STRING, "MainPC", NULL, "Machine name SystemDigitalTwin reports as its location." },
    { "core.workers", CK_INTEGER, "0", "0..16", "Worker threads for CoreOrchestrator's handlers, at most, started as requests need them; 0: the wire thread alone (each handler takes microseconds)." },
    { "core.prometheus_url", CK_STRING, "", NULL, "Prometheus server SystemDigitalTwin reads its figures from; empty: /proc and NVML directly." },
    { "core.registry", CK_MAPPING, NULL, NULL, "The agent registry." },
    { "core.registry.backend", CK_STRING, "sqlite", "sqlite|memory|redis", "Where registrations live: SQLite in data_dir, memory (lost on restart) or Redis shared by both machines (environment SERVICE_REGISTRY_BACKEND)." },
    { "core.registry.redis_url", CK_STRING, "redis://127.0.0.1:6379/0", NULL, "Redis server of the redis backend (environment SERVICE_REGISTRY_REDIS_URL)." },
    { "core.registry.prefix", CK_STRING, "service_registry:", NULL, "Key prefix of registrations in Redis (environment SERVICE_REGISTRY_REDIS_PREFIX)." },
    { "core.registry.ttl_s", CK_NUMBER, "300", "0.01..", "Seconds a registration lives without a heartbeat." },
    { "core.registry.fsync", CK_BOOLEAN, "false", NULL, "SQLite backend: fsync every registration (synchronous=FULL) instead of at checkpoints." },
    { "core.registry.new_names", CK_MAPPING, NULL, NULL, "How many new names one source address may create (registrations, REGISTER, the simple register_agent form); registering an existing name again never counts. A refusal names the address and the limit and is counted in keel_core_new_names_refused_total." },
    { "core.registry.new_names.burst", CK_INTEGER, "256", "0..", "New names one address may create at once; 0: no limit." },
    { "core.registry.new_names.per_minute", CK_NUMBER, "60", "0..", "New names one address may create each minute after the burst." },
    { "core.agents", CK_LIST, "[]", NULL, "Agents CoreOrchestrator starts and supervises (keelctl migrate config writes this list)." },
    { "core.agents[].name", CK_STRING, NULL, NULL, "The agent's name, as in the registry." },
    { "core.agents[].command", CK_STRING, NULL, NULL, "Program to run; without one the agent is only watched, never started." },
    { "core.agents[].args", CK_STRINGS, NULL, NULL, "Its arguments." },
    { "core.agents[].env", CK_MAPPING, NULL, NULL, "Environment variables added to Keel's own." },
    { "core.agents[].env.*", CK_STRING, NULL, NULL, "One variable's value." },
    { "core.agents[].cwd", CK_STRING, NULL, NULL, "Working directory; empty: keeld's." },
    { "core.agents[].restart", CK_STRING, NULL, "always|on-failure|never|no", "Restart policy; absent: on-failure." },
    { "core.agents[].autostart", CK_BOOLEAN, NULL, NULL, "Start it with Keel; absent: true." },
    { "core.agents[].output", CK_STRING, NULL, "file|log|both", "Where its stdout and stderr go: appended to <data_dir>/core/logs/<name>.log, logged by keeld line by line as \"[<name>] <line>\" (stderr at ERROR level), or both; absent: file." },
    { "core.agents[].depends_on", CK_STRINGS, NULL, NULL, "Agents (or Keel services) started and healthy before this one." },
    { "core.agents[].host", CK_STRING, NULL, NULL, "Host its health is checked on; absent: 127.0.0.1." },
    { "core.agents[].port", CK_INTEGER, NULL, "0..65535", "Its ZMQ port, health-checked by the supervisor; absent: not checked." },
    { "core.agents[].health_check_port", CK_INTEGER, NULL, "0..65535", "Its health port in the original startup configuration (kept by keelctl migrate config)." },
    { "core.agents[].machine", CK_STRING, NULL, NULL, "Machine it belongs to in the original startup configuration (kept by keelctl migrate config)." },
    { "core.agents[].required", CK_BOOLEAN, NULL, NULL, "Its required flag in the original startup configuration (kept by keelctl migrate config)." },
    { "core.agents[].config", CK_MAPPING, NULL, NULL, "Its own settings from the original startup configuration (kept by keelctl migrate config)." },
    { "core.supervisor", CK_MAPPING, NULL, NULL, "How supervised agents are restarted." },
    { "core.supervisor.health_interval_s", CK_NUMBER, "30.0", "0.05..", "Seconds between health checks of supervised agents." },
    { "core.supervisor.backoff_base_s", CK_NUMBER, "1.0", "0..", "First restart delay; each further restart doubles it." },
    { "core.supervisor.backoff_max_s", CK_NUMBER, "60.0", "0..", "Longest restart delay." },
    { "core.supervisor.stable_s", CK_NUMBER, "60.0", "0..", "Seconds an agent must run before its restart count starts again from zero." },
    { "core.supervisor.stop_grace_s", CK_NUMBER, "5.0", "0..", "Seconds between SIGTERM and SIGKILL when stopping an agent." },
    { "core.supervisor.max_restarts", CK_INTEGER, "5", "0..", "Restarts in a row before the supervisor gives up (an ErrorBus event, never a silent give-up)." },
    { "core.twin", CK_MAPPING, NULL, NULL, "SystemDigitalTwin." },
    { "core.twin.poll_interval_s", CK_NUMBER, "5.0", "0.05..", "Seconds between system samples." },
    { "core.twin.history_length", CK_INTEGER, "60", "1..100000", "Samples kept for get_metrics_history." },
    { "core.twin.network_baseline_ms", CK_NUMBER, "50.0", "0..", "Network latency the simulations assume." },
    { "core.twin.vram_capacity_mb", CK_NUMBER, "24000.0", "0..", "MainPC VRAM the simulations assume when NVML cannot tell." },
    { "core.twin.ram_capacity_mb", CK_NUMBER, "32000.0", "0..", "RAM the simulations assume when /proc cannot tell." },
    { "core.twin.pc2_vram_capacity_mb", CK_NUMBER, "12000.0", "0..", "PC2 VRAM the simulations assume." },
    { "core.coordinator", CK_MAPPING, NULL, NULL, "RequestCoordinator." },
    { "core.coordinator.max_frame_bytes", CK_INTEGER, "262144", "1024..67108864", "Largest frame taken from the language-analysis and interrupt subscriptions; a larger one is dropped and counted, never allocated." },
    { "core.coordinator.queue_max_size", CK_INTEGER, "100", "1..1000000", "Tasks waiting in the priority queue before new ones are dropped." },
    { "core.coordinator.task_timeout_ms", CK_INTEGER, "5000", "1..", "Timeout of one dispatch to a downstream agent." },
    { "core.coordinator.interrupt_pause_s", CK_NUMBER, "5.0", "0..", "Seconds dispatch pauses after an interrupt." },
    { "core.coordinator.inactivity_s", CK_NUMBER, "300.0", "0..", "Seconds without an interaction before a proactive suggestion is due." },
    { "core.coordinator.inactivity_check_s", CK_NUMBER, "30.0", "0.01..", "Seconds between inactivity checks." },
    { "core.coordinator.metrics_save_s", CK_NUMBER, "300.0", "0.01..", "Seconds between saves of the coordinator's statistics." },
    { "core.coordinator.interrupt_endpoint", CK_STRING, "tcp://127.0.0.1:5576", NULL, "PUB socket of interrupts (StreamingInterruptHandler) the coordinator subscribes to." },
    { "core.coordinator.language_endpoint", CK_STRING, "tcp://127.0.0.1:5577", NULL, "PUB socket of language-analysis frames the coordinator subscribes to." },
    { "core.coordinator.breaker", CK_MAPPING, NULL, NULL, "The circuit breaker in front of each downstream agent." },
    { "core.coordinator.breaker.failures", CK_INTEGER, "3", "1..1000", "Failures in a row that open the breaker." },
    { "core.coordinator.breaker.reset_s", CK_NUMBER, "30", "0.01..86400", "Seconds the first opening lasts before trial requests go through." },
    { "core.coordinator.breaker.max_reset_s", CK_NUMBER, "240", "0.01..86400", "Each failed trial doubles the opening, up to this: a downstream that keeps failing stays ejected longer each time." },
    { "core.coordinator.breaker.half_open_probes", CK_INTEGER, "1", "1..100", "Trial requests let through at once while half open; one that never reports back is written off after the opening's length." },
    { "core.coordinator.suggestion_port", CK_PORT, "5591", "1..65535", "Port of the proactive-suggestion channel." },
    /* ---- ResourceManager+Scheduler ---- */
    { "resource", CK_MAPPING, NULL, NULL, "ResourceManager+Scheduler: ResourceManager, TaskScheduler, AsyncProcessor, VRAMOptimizerAgent." },
    { "resource.model_manager_endpoint", CK_STRING, "tcp://127.0.0.1:5570", NULL, "ModelManagerAgent, asked to load and unload models." },
    { "resource.proc_root", CK_STRING, "/proc", NULL, "Where system statistics are read (a copy of /proc for tests)." },
    { "resource.stats_cache_s", CK_NUMBER, "0.1", "0..", "Seconds a system sample is reused." },
    { "resource.allocation_lease_s", CK_NUMBER, "0", "0..", "Seconds an allocation lives when the request names no lease; 0: until released." },
    { "resource.wire_workers", CK_INTEGER, "16", "0..16", "Worker threads for ResourceManager's handlers (some wait on ModelManagerAgent), at most, started as requests need them." },
    { "resource.health_broadcast_port", CK_PORT, "0", "0..65535", "PUB port of a periodic health broadcast; 0: none." },
    { "resource.health_broadcast_interval_s", CK_NUMBER, "30", "0.01..", "Seconds between health broadcasts." },
    { "resource.thresholds", CK_MAPPING, NULL, NULL, "Admission limits of allocate_resources, in percent (set_thresholds changes them)." },
    { "resource.thresholds.cpu", CK_NUMBER, "80.0", "0..100", "CPU use above which allocations are refused." },
    { "resource.thresholds.memory", CK_NUMBER, "80.0", "0..100", "Memory use above which allocations are refused." },
    { "resource.thresholds.gpu", CK_NUMBER, "80.0", "0..100", "GPU memory use above which allocations are refused." },
    { "resource.scheduler", CK_MAPPING, NULL, NULL, "TaskScheduler and AsyncProcessor." },
    { "resource.scheduler.queue_size", CK_INTEGER, "1000", "1..10000000", "Tasks waiting before new ones are refused." },
    { "resource.scheduler.workers", CK_INTEGER, NULL, "1..256", "Tasks run at once; absent: one per GPU, at least one." },
    { "resource.scheduler.timeout_s", CK_NUMBER, "30", "0.001..", "Seconds one attempt of a task may take." },
    { "resource.scheduler.max_retries", CK_INTEGER, "3", "0..100", "Attempts after the first before a task fails." },
    { "resource.scheduler.retry_backoff_s", CK_NUMBER, "1.0", "0..", "First delay before a retry; doubled each time." },
    { "resource.scheduler.retry_backoff_max_s", CK_NUMBER, "30", "0..", "Longest delay before a retry." },
    { "resource.scheduler.reply_wait_s", CK_NUMBER, "60", "0..", "Seconds a synchronous request waits for its task's result." },
    { "resource.scheduler.durable", CK_BOOLEAN, "true", NULL, "Journal tasks in SQLite so that queued tasks survive a restart." },
    { "resource.scheduler.handlers", CK_MAPPING, NULL, NULL, "Task type to the endpoint that runs it; absent: tasks are completed by Keel itself." },
    { "resource.scheduler.handlers.*", CK_STRING, NULL, NULL, "Endpoint (tcp://host:port) of one task type's handler." },
    { "resource.vram", CK_MAPPING, NULL, NULL, "VRAMOptimizerAgent." },
    { "resource.vram.sdt_endpoint", CK_STRING, "", NULL, "SystemDigitalTwin asked for VRAM figures; empty: the local CoreOrchestrator (7000 + port_offset)." },
    { "resource.vram.rc_endpoint", CK_STRING, "", NULL, "RequestCoordinator told about unloads; empty: nobody." },
    { "resource.vram.mef_endpoint", CK_STRING, "", NULL, "ModelEvaluationFramework asked for usage predictions; empty: nobody." },
    { "resource.vram.critical_threshold", CK_NUMBER, "0.9", "0..1", "VRAM use (fraction) at which models are unloaded at once." },
    { "resource.vram.warning_threshold", CK_NUMBER, "0.75", "0..1", "VRAM use (fraction) at which idle models are unloaded." },
    { "resource.vram.safe_threshold", CK_NUMBER, "0.5", "0..1", "VRAM use (fraction) unloading aims for." },
    { "resource.vram.idle_timeout", CK_NUMBER, "900", "0..", "Seconds unused before a model counts as idle." },
    { "resource.vram.defragmentation_threshold", CK_NUMBER, "0.70", "0..1", "Fragmentation (fraction) above which a defragmentation is proposed." },
    { "resource.vram.monitor_interval", CK_NUMBER, "5", "0.01..", "Seconds between VRAM checks." },
    { "resource.vram.idle_check_interval", CK_NUMBER, "60", "0.01..", "Seconds between idle-model checks." },
    { "resource.vram.optimization_interval", CK_NUMBER, "300", "0.01..", "Seconds between optimisation passes." },
    { "resource.vram.prediction_interval", CK_NUMBER, "60", "0.01..", "Seconds between usage predictions." },
    { "resource.vram.prediction_window", CK_NUMBER, "3600", "0.01..", "Seconds of usage history a prediction looks at." },
    { "resource.vram.unload_pause", CK_NUMBER, "1.0", "0..", "Seconds between two unloads." },
    { "resource.vram.predictive_loading_enabled", CK_BOOLEAN, "true", NULL, "Preload models that usage predicts." },
    { "resource.vram.mainpc_vram_budget_mb", CK_NUMBER, "20000", "0..", "VRAM models may use on MainPC." },
    { "resource.vram.pc2_vram_budget_mb", CK_NUMBER, "10000", "0..", "VRAM models may use on PC2." },
    { "resource.vram.timeout_ms", CK_INTEGER, "5000", "1..", "Timeout of calls to ModelManagerAgent and SystemDigitalTwin." },
    { "resource.vram.admission_timeout_ms", CK_INTEGER, "1500", "1..", "Timeout of the admission check a load request waits for." },
    { "resource.vram.health_probe_timeout_ms", CK_INTEGER, "2000", "1..", "Timeout of the health probe of ModelManagerAgent." },
    { "resource.vram.load_reservation_s", CK_NUMBER, "120", "0..", "Seconds VRAM stays reserved for a model being loaded." },
    { "resource.vram.device_names", CK_STRINGS, NULL, NULL, "Names of GPU 0 and GPU 1; absent: MainPC, PC2." },
    /* ---- ObservabilityHub ---- */
    { "observability", CK_MAPPING, NULL, NULL, "ObservabilityHub: PredictiveHealthMonitor, PerformanceMonitor, HealthMonitor, PerformanceLoggerAgent, SystemHealthManager, and the dashboard." },
    { "observability.machine", CK_STRING, "local", NULL, "Name of the hub's own machine in agent records and partition detection." },
    { "observability.workers", CK_INTEGER, "4", "0..16", "Worker threads for the hub's handlers, at most, started as requests need them." },
    { "observability.history", CK_MAPPING, NULL, NULL, "The dashboard's stored time series." },
    { "observability.history.step_s", CK_NUMBER, "10", "1..60", "Seconds between two points of the finest series (10 s for 15 min; 1 min and 15 min rings for 1 h and 24 h)." },
    { "observability.interval_s", CK_INTEGER, "2", "1..", "Seconds between health sweeps over every agent: a dead agent is down within three sweeps (a sweep of 1,000 agents costs about 0.5 ms of CPU per agent: docs/dashboard.md)." },
    { "observability.interval_ms", CK_INTEGER, NULL, "10..", "The same in milliseconds, which wins; absent: interval_s × 1000." },
    { "observability.timeout_ms", CK_INTEGER, "2000", "1..", "Timeout of one agent's health probe." },
    { "observability.max_agents", CK_INTEGER, "4096", "1..1000000", "Agents watched at most. Configured agents and agents heartbeating to the registry are always watched; when the table is full a new registry name takes the place of an agent that has not answered a probe within the registry's TTL, least recently seen first, or waits (keel_watched_agents_evicted_total, keel_watched_agents_refused_total)." },
    { "observability.max_services", CK_INTEGER, "500", "1..1000000", "Agents PerformanceMonitor keeps figures for (log_metric's service). When the table is full a new name takes the place of one logged only once, else of one silent for a day, least recently seen first, and its rows are deleted; otherwise it is refused (keel_perf_agents_evicted_total, keel_perf_agents_refused_total)." },
    { "observability.new_services", CK_MAPPING, NULL, NULL, "How many new names one source address may create in PerformanceMonitor's table with log_metric; logging under a known name never counts." },
    { "observability.new_services.burst", CK_INTEGER, "256", "0..", "New names one address may create at once; 0: no limit." },
    { "observability.new_services.per_minute", CK_NUMBER, "60", "0..", "New names one address may create each minute after the burst." },
    { "observability.auto_recover", CK_BOOLEAN, "false", NULL, "Recover a down agent (tiers 1 to 4) unless its entry says otherwise." },
    { "observability.discover", CK_BOOLEAN, "true", NULL, "Watch the agents the registry knows too, not only those listed in agents." },
    { "observability.discovery_interval_ms", CK_INTEGER, "30000", "50..", "Milliseconds between reads of the registry for new agents." },
    { "observability.registry_endpoint", CK_STRING, NULL, NULL, "Registry asked for agents; absent: the local CoreOrchestrator (7000 + port_offset); empty: none." },
    { "observability.registry_timeout_ms", CK_INTEGER, "1000", "1..", "Timeout of one registry read." },
    { "observability.stale_after_s", CK_NUMBER, "300", "0..", "Seconds after which a pushed health report or a cross-registered agent counts as stale." },
    { "observability.stale_check_ms", CK_INTEGER, "30000", "10..", "Milliseconds between stale checks." },
    { "observability.sample_interval_s", CK_NUMBER, "1.0", "0.01..", "Seconds between host samples (CPU, memory, disk)." },
    { "observability.proc_root", CK_STRING, "/proc", NULL, "Where host statistics are read (a copy of /proc for tests)." },
    { "observability.predict_threshold", CK_NUMBER, "0.7", "0..1", "Predicted failure probability that starts a recovery before the agent fails." },
    { "observability.self_healing_endpoint", CK_STRING, "", NULL, "SelfHealingSupervisor asked at recovery tier 2; empty: skipped." },
    { "observability.status_port", CK_PORT, "6584", "1..65535", "PUB port of agent status changes." },
    { "observability.performance_feeds", CK_BOOLEAN, NULL, NULL, "Publish PerformanceMonitor's metrics and health feeds; absent: as legacy_ports." },
    { "observability.performance_metrics_port", CK_PORT, "5619", "1..65535", "PUB port of PerformanceMonitor's metrics feed." },
    { "observability.performance_health_port", CK_PORT, "5620", "1..65535", "PUB port of PerformanceMonitor's health feed." },
    { "observability.broadcast_interval_ms", CK_INTEGER, "5000", "10..", "Milliseconds between feed messages." },
    { "observability.memory_orchestrator_endpoint", CK_STRING, NULL, NULL, "MemoryOrchestrator, probed by the memory-service check; absent: tcp://127.0.0.1:7140, probed only when memory_services.enabled says so." },
    { "observability.memory_scheduler_endpoint", CK_STRING, NULL, NULL, "MemoryScheduler, probed by the memory-service check; absent: tcp://127.0.0.1:7142, probed only when memory_services.enabled says so." },
    { "observability.memory_services", CK_MAPPING, NULL, NULL, "The memory-service check." },
    { "observability.memory_services.enabled", CK_BOOLEAN, NULL, NULL, "Probe MemoryOrchestrator and MemoryScheduler; absent: only where an endpoint of theirs is configured." },
    { "observability.memory_services.interval_s", CK_INTEGER, "60", "1..", "Seconds between probes." },
    { "observability.memory_services.interval_ms", CK_INTEGER, NULL, "10..", "The same in milliseconds, which wins; absent: interval_s × 1000." },
    { "observability.memory_services.timeout_ms", CK_INTEGER, "5000", "1..", "Timeout of one probe." },
    { "observability.flap", CK_MAPPING, NULL, NULL, "Damping of agent state changes (N failures of the last M probes)." },
    { "observability.flap.failures", CK_INTEGER, "2", "1..32", "Failed probes (N) that make an agent down; as many successes bring it back." },
    { "observability.flap.window", CK_INTEGER, "3", "1..32", "Probes (M) the count looks at." },
    { "observability.partition", CK_MAPPING, NULL, NULL, "Partition detection: many agents of another machine failing at once." },
    { "observability.partition.min_agents", CK_INTEGER, "3", "1..", "Agents another machine must have for a partition to be considered." },
    { "observability.partition.ratio", CK_NUMBER, "0.8", "0..1", "Share of them failing at once that marks them unreachable (partition) instead of down." },
    { "observability.recovery", CK_MAPPING, NULL, NULL, "Recovery tiers." },
    { "observability.recovery.cooldown_s", CK_NUMBER, "60", "0..", "Seconds before the same agent's next recovery; it grows with each tier." },
    { "observability.recovery.timeout_ms", CK_INTEGER, "5000", "1..", "Timeout of one recovery call." },
    { "observability.thresholds", CK_MAPPING, NULL, NULL, "PerformanceMonitor's alert thresholds." },
    { "observability.thresholds.cpu_percent", CK_NUMBER, "80", "0..100", "Host CPU use that raises an alert." },
    { "observability.thresholds.memory_percent", CK_NUMBER, "85", "0..100", "Host memory use that raises an alert." },
    { "observability.thresholds.response_time", CK_NUMBER, "2.0", "0..", "Seconds of mean response time that raise an alert." },
    { "observability.thresholds.error_rate", CK_NUMBER, "0.05", "0..1", "Error share that raises an alert." },
    { "observability.thresholds.queue_size", CK_NUMBER, "100", "0..", "Queue size that raises an alert." },
    { "observability.metrics", CK_MAPPING, NULL, NULL, "PredictiveHealthMonitor's metric collection." },
    { "observability.metrics.collection_interval_s", CK_INTEGER, "5", "1..", "Seconds between collections (and alert rule checks)." },
    { "observability.metrics.collection_interval_ms", CK_INTEGER, NULL, "10..", "The same in milliseconds, which wins; absent: collection_interval_s × 1000." },
    { "observability.optimizer", CK_MAPPING, NULL, NULL, "The memory optimiser (off unless kill_processes)." },
    { "observability.optimizer.memory_threshold", CK_NUMBER, "80", "0..100", "Memory use (percent) that starts an optimisation." },
    { "observability.optimizer.cpu_threshold", CK_NUMBER, "80", "0..100", "CPU use (percent) that starts an optimisation." },
    { "observability.optimizer.disk_threshold", CK_NUMBER, "90", "0..100", "Disk use (percent) that starts an optimisation." },
    { "observability.optimizer.process_memory_limit", CK_NUMBER, "5.0", "0..100", "Share of memory (percent) above which a process Keel started may be stopped." },
    { "observability.optimizer.kill_processes", CK_BOOLEAN, "false", NULL, "Allow the optimiser to stop processes Keel itself started (never others)." },
    { "observability.optimizer.interval_s", CK_INTEGER, "300", "1..", "Seconds between optimisation checks." },
    { "observability.optimizer.interval_ms", CK_INTEGER, NULL, "10..", "The same in milliseconds, which wins; absent: interval_s × 1000." },
    { "observability.retention", CK_MAPPING, NULL, NULL, "How long the hub's database keeps rows." },
    { "observability.retention.metrics_days", CK_INTEGER, "30", "1..", "Days of performance metrics kept." },
    { "observability.retention.resource_usage_days", CK_INTEGER, "7", "1..", "Days of resource usage kept." },
    { "observability.retention.interval_s", CK_INTEGER, "86400", "1..", "Seconds between clean-ups." },
    { "observability.retention.retry_s", CK_INTEGER, "3600", "1..", "Seconds before a failed clean-up is tried again." },
    { "observability.unified", CK_MAPPING, NULL, NULL, "The parts the hub reports as unified in its health (SystemHealthManager's flags)." },
    { "observability.unified.health", CK_BOOLEAN, "true", NULL, "Report health monitoring as unified." },
    { "observability.unified.performance", CK_BOOLEAN, "true", NULL, "Report performance monitoring as unified." },
    { "observability.unified.prediction", CK_BOOLEAN, "true", NULL, "Report failure prediction as unified." },
    { "observability.agents", CK_LIST, "[]", NULL, "Agents the hub watches besides those in the registry (CoreOrchestrator runs processes: core.agents)." },
    { "observability.agents[].name", CK_STRING, NULL, NULL, "The agent's name." },
    { "observability.agents[].host", CK_STRING, NULL, NULL, "Host it is probed on; absent: 127.0.0.1." },
    { "observability.agents[].port", CK_INTEGER, NULL, "0..65535", "Its ZMQ port." },
    { "observability.agents[].health_port", CK_INTEGER, NULL, "0..65535", "Port probed instead of port." },
    { "observability.agents[].http_port", CK_INTEGER, NULL, "0..65535", "HTTP port of an http check; absent: port + 1." },
    { "observability.agents[].machine", CK_STRING, NULL, NULL, "Machine it runs on; absent: observability.machine." },
    { "observability.agents[].check", CK_STRING, NULL, "zmq|http|both", "How it is probed; absent: zmq." },
    { "observability.agents[].probe", CK_STRING, NULL, "health|health_check", "Probe request: health (PredictiveHealthMonitor's) or health_check; absent: health_check." },
    { "observability.agents[].expect", CK_STRING, NULL, "ok|success", "Status word a healthy reply carries; absent: ok." },
    { "observability.agents[].timeout_ms", CK_INTEGER, NULL, "1..", "Probe timeout; absent: observability.timeout_ms." },
    { "observability.agents[].required", CK_BOOLEAN, NULL, NULL, "Whether its failure makes the system unhealthy; absent: true." },
    { "observability.agents[].auto_recover", CK_BOOLEAN, NULL, NULL, "Recover it when down; absent: observability.auto_recover." },
    { "observability.agents[].recovery_strategy", CK_STRING, NULL, "tier1|tier2|tier3|tier4", "Recovery tier tried first when it goes down; absent: tier1." },
    { "observability.agents[].dependencies", CK_STRINGS, NULL, NULL, "Agents tier3 recovery restarts before this one." },
    /* ---- ErrorBus ---- */
    { "errorbus", CK_MAPPING, NULL, NULL, "ErrorBus: the error bus, ErrorManagementSystem, error reporting and recovery." },
    { "errorbus.nats_url", CK_STRING, "", NULL, "NATS server the bus bridges events to; empty: no bridge." },
    { "errorbus.nats_subject_prefix", CK_STRING, "keel.errors", NULL, "Subject prefix of bridged events (<prefix>.<severity>)." },
    { "errorbus.retention_days", CK_NUMBER, "30", "0..", "Days events are kept." },
    { "errorbus.retention_interval_s", CK_NUMBER, "3600", "0.01..", "Seconds between clean-ups." },
    { "errorbus.rcvhwm", CK_INTEGER, "100000", "1..", "Ingress receive high-water mark (messages queued in ZMQ)." },
    { "errorbus.queue_max", CK_INTEGER, "32768", "1..", "Events received but not yet written: past it the ingress waits for the writer (dropping, and counting, only when the writer is stuck); what a kill -9 can lose besides the ZMQ queue." },
    { "errorbus.fanout_queue_max", CK_INTEGER, "250000", "1..", "Stored events waiting to be re-published; past it they are stored but not re-published, and counted." },
    { "errorbus.max_event_bytes", CK_INTEGER, "1048576", "64..", "Largest event accepted." },
    { "errorbus.heartbeat_interval_s", CK_NUMBER, "15", "0.01..", "Seconds between heartbeats expected from monitored agents." },
    { "errorbus.heartbeat_timeout_s", CK_NUMBER, "45", "0.01..", "Seconds without a heartbeat before one counts as missed." },
    { "errorbus.max_missed_heartbeats", CK_INTEGER, "3", "1..", "Missed heartbeats that start a recovery." },
    { "errorbus.recovery_poll_s", CK_NUMBER, "1", "0.01..", "Seconds between recovery checks." },
    { "errorbus.recovery_max_attempts", CK_INTEGER, "3", "0..", "Recovery attempts per agent before giving up (an event)." },
    { "errorbus.recovery_timeout_s", CK_NUMBER, "5", "0.001..", "Timeout of one recovery call." },
    { "errorbus.recovery_endpoint", CK_STRING, "", NULL, "CoreOrchestrator asked to restart agents; empty: the local one (7000 + port_offset)." },
    { "errorbus.correlation_interval_s", CK_NUMBER, "300", "0.01..", "Seconds between correlation passes." },
    { "errorbus.correlation_window_s", CK_NUMBER, "60", "0..", "Seconds within which errors count as related." },
    { "errorbus.correlation_rows", CK_INTEGER, "100", "1..", "Recent events one correlation pass reads." },
    { "errorbus.alert_interval_s", CK_NUMBER, "60", "0.01..", "Seconds between error-rate checks." },
    { "errorbus.alert_window_s", CK_NUMBER, "3600", "0.01..", "Seconds the error-rate check looks back." },
    { "errorbus.rate_alert_per_min", CK_NUMBER, "600", "0..", "Errors per minute that raise a rate alert." },
    { "errorbus.legacy_config", CK_STRING, "documentation/error_management/error_bus_config.yaml", NULL, "ErrorBusService's own YAML, read for its log patterns; Keel's keys win over it." },
    { "errorbus.logs_dir", CK_STRING, NULL, NULL, "Directory of agents' logs scanned for errors; absent: the legacy file's logs_dir, else logs." },
    { "errorbus.log_scan_interval_s", CK_NUMBER, NULL, "0.01..", "Seconds between log scans; absent: the legacy file's scan_interval, else 60." },
    { "errorbus.error_patterns", CK_LIST, NULL, NULL, "Patterns the log scan looks for; absent: the legacy file's." },
    { "errorbus.error_patterns[].pattern", CK_STRING, NULL, NULL, "A POSIX extended regular expression." },
    { "errorbus.error_patterns[].error_type", CK_STRING, NULL, NULL, "Error type of a matching line; absent: unknown." },
    { "errorbus.error_patterns[].severity", CK_STRING, NULL, NULL, "Severity of a matching line; absent: WARNING." },
    /* ---- SecurityGateway ---- */
    { "security", CK_MAPPING, NULL, NULL, "SecurityGateway: AuthenticationAgent, AgentTrustScorer, CURVE keys." },
    { "security.allow_registration", CK_BOOLEAN, "false", NULL, "Let anyone register a user; otherwise only an administrator can." },
    { "security.session_ttl_s", CK_NUMBER, "86400", "0.01..", "Seconds a login session lives." },
    { "security.max_sessions_per_user", CK_INTEGER, "20", "1..", "Sessions one user may hold; the oldest goes first." },
    { "security.sweep_interval_s", CK_NUMBER, "300", "0.01..", "Seconds between sweeps of expired sessions and locks." },
    { "security.max_user_id_bytes", CK_INTEGER, "128", "1..255", "Longest user name accepted; never more than the 255 bytes every name is limited to." },
    { "security.max_password_bytes", CK_INTEGER, "1024", "1..65536", "Longest password accepted." },
    { "security.max_request_bytes", CK_INTEGER, "65536", "1024..268435456", "Largest request SecurityGateway parses." },
    { "security.jwt_keys_file", CK_STRING, "", NULL, "HS256 keys of service-to-service JWTs; empty: <data_dir>/security/jwt.keys." },
    { "security.endpoint", CK_STRING, "", NULL, "SecurityGateway asked to check session tokens on HTTP routes; empty: the local one (7005 + port_offset)." },
    { "security.argon2", CK_MAPPING, NULL, NULL, "Argon2id cost of password hashes." },
    { "security.argon2.opslimit", CK_INTEGER, "3", "1..", "Passes (raised to libsodium's minimum)." },
    { "security.argon2.memlimit_kib", CK_INTEGER, "65536", "8..", "Memory in KiB (raised to libsodium's minimum)." },
    { "security.lockout", CK_MAPPING, NULL, NULL, "Lockout after failed logins." },
    { "security.lockout.failures", CK_INTEGER, "5", "1..", "Failures of one user within window_s that lock it." },
    { "security.lockout.source_failures", CK_INTEGER, NULL, "1..", "Failures from one address within window_s that lock it; absent: 4 × failures." },
    { "security.lockout.window_s", CK_NUMBER, "900", "0.01..", "Seconds the failures are counted over." },
    { "security.lockout.base_lock_s", CK_NUMBER, "60", "0.01..", "First lock; each further lock doubles it." },
    { "security.lockout.max_lock_s", CK_NUMBER, "86400", "0.01..", "Longest lock." },
    { "security.monitor", CK_MAPPING, NULL, NULL, "Security events published on the ErrorBus." },
    { "security.monitor.failed_login_burst", CK_INTEGER, "10", "1..", "Failed logins within burst_window_s that raise an event." },
    { "security.monitor.burst_window_s", CK_NUMBER, "60", "0.01..", "Seconds the burst is counted over." },
    { "security.monitor.trust_drop", CK_NUMBER, "0.3", "0..1", "Fall of a trust score in one update that raises an event." },
    { "security.monitor.event_interval_s", CK_NUMBER, "10", "0..", "Least seconds between two events of one kind." },
    /* ---- delegation, per absorbed agent ---- */
    { "modules", CK_MAPPING, "{}", NULL, "Per absorbed agent: answered by Keel (unified) or forwarded to the still-running original (delegate)." },
    { "modules.*", CK_MAPPING, NULL, AGENTS, "One absorbed agent, by its original name." },
    { "modules.*.mode", CK_STRING, "unified", "unified|delegate", "unified: Keel answers; delegate: each request goes to delegate_to." },
    { "modules.*.delegate_to", CK_STRING, "", NULL, "The original agent's endpoint (tcp://host:port) in delegate mode." },
    { "modules.*.fallback", CK_BOOLEAN, "false", NULL, "Answer here when the original fails to reply." },
    { "modules.*.timeout_ms", CK_INTEGER, "5000", "1..", "Timeout of one forwarded request." },
    { "modules.*.breaker", CK_MAPPING, NULL, NULL, "The circuit breaker in front of the module's legacy agent." },
    { "modules.*.breaker.failures", CK_INTEGER, "3", "1..1000", "Failed forwards in a row that open the breaker." },
    { "modules.*.breaker.reset_s", CK_NUMBER, "30", "0.01..86400", "Seconds the first opening lasts before trial forwards go through." },
    { "modules.*.breaker.max_reset_s", CK_NUMBER, "240", "0.01..86400", "Each failed trial doubles the opening, up to this." },
    { "modules.*.breaker.half_open_probes", CK_INTEGER, "1", "1..100", "Trial forwards let through at once while half open." },
};

#define NKEYS (sizeof keys / sizeof keys[0])

const configkey_t *configkeys_all(size_t *count)
{
    *count = NKEYS;
    return keys;
}

const configkey_t *configkeys_find(const char *pattern)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (strcmp(keys[i].name, pattern) == 0)
            return &keys[i];
    return NULL;
}

/* Whether entry `name` is `parent` + "." + `child`. */
static bool is_child(const char *name, const char *parent, const char *child)
{
    size_t plen = strlen(parent);
    if (plen) {
        if (strncmp(name, parent, plen) != 0 || name[plen] != '.')
            return false;
        name += plen + 1;
    }
    return strcmp(name, child) == 0;
}

const configkey_t *configkeys_child(const char *parent, const char *name)
{
    const configkey_t *wildcard = NULL;
    for (size_t i = 0; i < NKEYS; i++) {
        if (is_child(keys[i].name, parent, name))
            return &keys[i];
        if (!wildcard && is_child(keys[i].name, parent, "*"))
            wildcard = &keys[i];
    }
    return wildcard;
}

bool configkeys_has_children(const char *pattern)
{
    size_t len = strlen(pattern);
    for (size_t i = 0; i < NKEYS; i++)
        if (strncmp(keys[i].name, pattern, len) == 0 && keys[i].name[len] == '.')
            return true;
    return false;
}

const char *configkeys_type_name(configkey_type_t type)
{
    static const char *names[] = { "string", "integer", "number", "boolean", "port",
                                   "list of strings", "list", "mapping" };
    return names[type];
}

json_t *configkeys_default(const configkey_t *key)
{
    const char *d = key->def;
    if (!d)
        return NULL;
    switch (key->type) {
    case CK_STRING: return json_string(d);
    case CK_INTEGER:
    case CK_PORT: return json_integer(strtoll(d, NULL, 10));
    case CK_NUMBER: return json_real(strtod(d, NULL));
    case CK_BOOLEAN: return json_boolean(strcmp(d, "true") == 0);
    case CK_STRINGS:
    case CK_LIST:
    case CK_MAPPING: {
        /* A list or mapping default is JSON text: "[]", or a table of names. */
        json_t *value = json_loads(d, JSON_DECODE_ANY, NULL);
        if (value && configkeys_type_fits(key, value))
            return value;
        json_decref(value);
        return key->type == CK_MAPPING ? json_object() : json_array();
    }
    }
    return NULL;
}

static bool all_strings(json_t *list)
{
    size_t i;
    json_t *item;
    json_array_foreach(list, i, item)
        if (!json_is_string(item) && !json_is_null(item))
            return false;
    return true;
}

bool configkeys_type_fits(const configkey_t *key, json_t *value)
{
    switch (key->type) {
    case CK_STRING: return json_is_string(value);
    case CK_INTEGER:
    case CK_PORT: return json_is_integer(value);
    case CK_NUMBER: return json_is_number(value);
    case CK_BOOLEAN: return json_is_boolean(value);
    case CK_STRINGS: return json_is_array(value) && all_strings(value);
    case CK_LIST: return json_is_array(value);
    case CK_MAPPING: return json_is_object(value);
    }
    return false;
}

/* Whether `word` is one of the '|'-separated choices. */
static bool among(const char *choices, const char *word)
{
    size_t n = strlen(word);
    const char *p = choices;
    for (;;) {
        const char *end = strchr(p, '|');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == n && strncmp(p, word, n) == 0)
            return true;
        if (!end)
            return false;
        p = end + 1;
    }
}

/* Parses "lo..hi" (either end may be empty) into lo and hi (±inf when left out). */
static bool numeric_range(const char *range, double *lo, double *hi)
{
    const char *dots = range ? strstr(range, "..") : NULL;
    if (!dots)
        return false;
    *lo = dots == range ? -INFINITY : strtod(range, NULL);
    *hi = dots[2] ? strtod(dots + 2, NULL) : INFINITY;
    return true;
}

bool configkeys_in_range(const configkey_t *key, json_t *value, char *why, size_t len)
{
    if (!key->range)
        return true;
    if (json_is_number(value)) {
        double lo, hi, v = json_number_value(value);
        if (!numeric_range(key->range, &lo, &hi) || (v >= lo && v <= hi))
            return true;
        char text[64];
        if (json_is_integer(value))
            snprintf(text, sizeof text, "%lld", (long long)json_integer_value(value));
        else
            snprintf(text, sizeof text, "%g", v);
        snprintf(why, len, "%s is out of range %s", text, key->range);
        return false;
    }
    if (json_is_string(value) && !strstr(key->range, "..")) {
        if (among(key->range, json_string_value(value)))
            return true;
        snprintf(why, len, "'%s' is not one of %s", json_string_value(value), key->range);
        return false;
    }
    return true;
}

bool configkeys_name_allowed(const configkey_t *key, const char *name, char *why, size_t len)
{
    size_t n = strlen(key->name);
    bool wildcard = n >= 2 && strcmp(key->name + n - 2, ".*") == 0;
    if (!wildcard || !key->range || among(key->range, name))
        return true;
    snprintf(why, len, "'%s' is not one of %s", name, key->range);
    return false;
}
