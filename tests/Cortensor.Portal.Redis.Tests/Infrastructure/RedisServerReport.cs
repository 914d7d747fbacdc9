using Xunit.Abstractions;
using Xunit.Sdk;

namespace Cortensor.Portal.Redis.Tests.Infrastructure;

/// <summary>
/// Says which Redis-protocol server this test run uses, as an xunit diagnostic message: <c>dotnet test</c> shows those
/// at its default verbosity (xunit.runner.json turns them on), unlike a test's own console output.
/// </summary>
public sealed class RedisServerReport
{
    public RedisServerReport(IMessageSink diagnostics)
    {
        ArgumentNullException.ThrowIfNull(diagnostics);
        diagnostics.OnMessage(new DiagnosticMessage($"Redis-protocol tests: {LocalRedisServer.Description}"));
    }
}
