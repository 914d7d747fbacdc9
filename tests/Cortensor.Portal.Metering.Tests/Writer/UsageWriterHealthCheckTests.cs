using Cortensor.Portal.Metering.Tests.TestDoubles;
using Cortensor.Portal.Metering.Writer;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Options;

namespace Cortensor.Portal.Metering.Tests.Writer;

/// <summary>The <c>usage-writer</c> readiness check against a real <see cref="UsageWriter"/> in each backlog state.</summary>
public sealed class UsageWriterHealthCheckTests
{
    private static Task<HealthCheckResult> CheckAsync(UsageWriter writer)
    {
        var check = new UsageWriterHealthCheck(writer);
        var context = new HealthCheckContext { Registration = new HealthCheckRegistration(UsageWriterHealthCheck.Name, check, HealthStatus.Unhealthy, null) };
        return check.CheckHealthAsync(context);
    }

    [Fact]
    public async Task Check_StartedWriterWithHealthySink_Healthy()
    {
        await using var harness = new WriterHarness(new RecordingSink());
        await harness.Writer.StartAsync(default);
        harness.Writer.Record(TestRecords.Create(TestRecords.Id(1)));

        var result = await CheckAsync(harness.Writer);

        Assert.Equal(HealthStatus.Healthy, result.Status);
        Assert.Null(result.Description);
    }

    [Fact]
    public async Task Check_QueueBelowThreshold_Healthy_AtEightyPercent_Degraded()
    {
        // Not started: nothing drains the queue, so its depth is exactly what was recorded.
        await using var harness = new WriterHarness(new RecordingSink(), o => o.QueueCapacity = 10);
        for (var i = 0; i < 7; i++)
        {
            harness.Writer.Record(TestRecords.Create(TestRecords.Id(i)));
        }

        Assert.Equal(HealthStatus.Healthy, (await CheckAsync(harness.Writer)).Status);

        harness.Writer.Record(TestRecords.Create(TestRecords.Id(7)));
        var result = await CheckAsync(harness.Writer);

        Assert.Equal(HealthStatus.Degraded, result.Status);
        Assert.Equal("usage queue nearly full (8/10)", result.Description);
    }

    [Fact]
    public async Task Check_QueueFull_Unhealthy_AndOverflowSpillsToDisk()
    {
        await using var harness = new WriterHarness(new RecordingSink(), o => o.QueueCapacity = 10);
        for (var i = 0; i < 11; i++)
        {
            harness.Writer.Record(TestRecords.Create(TestRecords.Id(i)));
        }

        var result = await CheckAsync(harness.Writer);

        Assert.Equal(HealthStatus.Unhealthy, result.Status);
        Assert.StartsWith("usage queue full (10/10)", result.Description, StringComparison.Ordinal);
        Assert.True(harness.Writer.SpillBytes > 0); // the 11th record went to disk
    }

    [Fact]
    public async Task Check_SinkFailing_DegradedWhileSpilling_ThenHealthyOnceReplayed()
    {
        var sink = new FlakySink();
        await using var harness = new WriterHarness(sink);
        await harness.Writer.StartAsync(default);
        harness.Writer.Record(TestRecords.Create(TestRecords.Id(1)));
        await Eventually.TrueAsync(() => !harness.Writer.IsSinkHealthy && harness.Writer.SpillBytes > 0, "the failed batch is spilled");

        var failing = await CheckAsync(harness.Writer);

        Assert.Equal(HealthStatus.Degraded, failing.Status);
        Assert.StartsWith("the usage store is failing: usage is spilling to disk (", failing.Description, StringComparison.Ordinal);

        sink.Failing = false;
        await Eventually.TrueAsync(() => harness.Writer.IsSinkHealthy && harness.Writer.SpillBytes == 0 && sink.Store.Count == 1, "the spill is replayed");

        Assert.Equal(HealthStatus.Healthy, (await CheckAsync(harness.Writer)).Status);
    }

    [Fact]
    public async Task Check_SpillLeftFromAnEarlierRun_DegradedUntilReplayed()
    {
        var spill = WriterHarness.NewTempDirectory();
        await using (var first = new WriterHarness(new FlakySink(), spillDirectory: spill) { DeleteSpillDirectoryOnDispose = false })
        {
            first.Writer.Record(TestRecords.Create(TestRecords.Id(1)));
        } // disposed before start: the queued record goes to the spill file

        var sink = new GatedSink(); // the replay waits until the gate opens
        await using var second = new WriterHarness(sink, spillDirectory: spill);
        await second.Writer.StartAsync(default);

        var waiting = await CheckAsync(second.Writer);
        Assert.Equal(HealthStatus.Degraded, waiting.Status);
        Assert.EndsWith("bytes of spilled usage waiting to be replayed", waiting.Description, StringComparison.Ordinal);

        sink.Open();
        await Eventually.TrueAsync(() => second.Writer.SpillBytes == 0, "the spill file is replayed");
        Assert.Equal(HealthStatus.Healthy, (await CheckAsync(second.Writer)).Status);
    }

    [Fact]
    public async Task Check_StoppedWriter_UsesTheRegistrationsFailureStatus()
    {
        await using var harness = new WriterHarness(new RecordingSink());
        await harness.Writer.StartAsync(default);
        await harness.StopAsync();
        var check = new UsageWriterHealthCheck(harness.Writer);

        var result = await check.CheckHealthAsync(new HealthCheckContext
        {
            Registration = new HealthCheckRegistration(UsageWriterHealthCheck.Name, check, HealthStatus.Degraded, null),
        });

        Assert.Equal(HealthStatus.Degraded, result.Status);
        Assert.Equal("the usage writer has stopped", result.Description);
    }

    [Fact]
    public async Task AddCortensorMetering_CalledTwice_RegistersTheCheckOnce_AndItRuns()
    {
        var services = new ServiceCollection().AddLogging();
        services.AddCortensorMetering(o => o.SpillDirectory = WriterHarness.NewTempDirectory());
        services.AddCortensorMetering();
        services.AddHealthChecks(); // the service that runs registered checks (AddCortensorGateway adds it in a host)
        await using var sp = services.BuildServiceProvider();

        var names = sp.GetRequiredService<IOptions<HealthCheckServiceOptions>>().Value.Registrations.Select(r => r.Name);
        var report = await sp.GetRequiredService<HealthCheckService>().CheckHealthAsync();

        Assert.Equal([UsageWriterHealthCheck.Name], names);
        Assert.Equal(HealthStatus.Healthy, report.Entries[UsageWriterHealthCheck.Name].Status);
    }
}
