"""Every name a kept agent may look up that Keel answers for, and the Keel
service (a key of conftest.PORTS) that answers it: the fifteen absorbed
agents and the five Keel services themselves."""

ABSORBED = {
    "ServiceRegistry": "core", "SystemDigitalTwin": "core", "RequestCoordinator": "core",
    "UnifiedSystemAgent": "core",
    "ResourceManager": "resource", "TaskScheduler": "resource", "AsyncProcessor": "resource",
    "VRAMOptimizerAgent": "resource",
    "PredictiveHealthMonitor": "observability", "PerformanceMonitor": "observability",
    "HealthMonitor": "observability", "PerformanceLoggerAgent": "observability",
    "SystemHealthManager": "observability",
    "AuthenticationAgent": "security", "AgentTrustScorer": "security",
}

SERVICES = {
    "CoreOrchestrator": "core", "ResourceManager": "resource", "ObservabilityHub": "observability",
    "ErrorBus": "errorbus", "SecurityGateway": "security",
}

ALL = dict(ABSORBED, **SERVICES)
