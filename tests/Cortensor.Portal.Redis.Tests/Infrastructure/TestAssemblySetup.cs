using System.Runtime.CompilerServices;

namespace Cortensor.Portal.Redis.Tests.Infrastructure;

internal static class TestAssemblySetup
{
    /// <summary>
    /// The concurrency tests (the shared contract suite among them) park dozens of thread-pool threads on a start
    /// gate. Without spare threads, the pool's slow thread injection would delay unrelated tests' pub/sub callbacks
    /// by seconds on a 2-core machine and make their delivery deadlines flaky.
    /// </summary>
#pragma warning disable CA2255 // a module initializer is the one place that runs before any test class
    [ModuleInitializer]
#pragma warning restore CA2255
    internal static void Initialize()
    {
        ThreadPool.GetMinThreads(out var workers, out var io);
        ThreadPool.SetMinThreads(Math.Max(workers, 128), io);
    }
}
