using System.Diagnostics.Metrics;
using Cortensor.Portal.Metering.Usage;
using Cortensor.Portal.Metering.Writer;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Testing;

namespace Cortensor.Portal.Metering.Tests.TestDoubles;

/// <summary>A <see cref="UsageWriter"/> on a temp spill folder with its own meter factory and a fake logger.</summary>
internal sealed class WriterHarness : IAsyncDisposable
{
    private readonly ServiceProvider _metrics;

    public WriterHarness(IUsageSink sink, Action<UsageWriterOptions>? configure = null, TimeProvider? timeProvider = null, string? spillDirectory = null)
    {
        SpillDirectory = spillDirectory ?? NewTempDirectory();
        Options = new UsageWriterOptions
        {
            SpillDirectory = SpillDirectory,
            MaxBatchDelay = TimeSpan.FromMilliseconds(5),
            RetryInitialDelay = TimeSpan.FromMilliseconds(10),
            RetryMaxDelay = TimeSpan.FromMilliseconds(40),
        };
        configure?.Invoke(Options);
        _metrics = new ServiceCollection().AddMetrics().BuildServiceProvider();
        MeterFactory = _metrics.GetRequiredService<IMeterFactory>();
        Logger = new FakeLogger<UsageWriter>();
        Writer = new UsageWriter(sink, Microsoft.Extensions.Options.Options.Create(Options), timeProvider ?? TimeProvider.System, MeterFactory, Logger);
    }

    public string SpillDirectory { get; }

    public bool DeleteSpillDirectoryOnDispose { get; init; } = true;

    public UsageWriterOptions Options { get; }

    public IMeterFactory MeterFactory { get; }

    public FakeLogger<UsageWriter> Logger { get; }

    public UsageWriter Writer { get; }

    public static string NewTempDirectory() =>
        Path.Combine(Path.GetTempPath(), "cortensor-metering-tests", Guid.NewGuid().ToString("N"));

    public string[] SpillFiles() =>
        Directory.Exists(SpillDirectory) ? Directory.GetFiles(SpillDirectory) : [];

    public async Task StopAsync(TimeSpan? deadline = null)
    {
        using var cts = new CancellationTokenSource(deadline ?? TimeSpan.FromSeconds(10));
        await Writer.StopAsync(cts.Token);
    }

    public async ValueTask DisposeAsync()
    {
        await Writer.DisposeAsync();
        await _metrics.DisposeAsync();
        if (!DeleteSpillDirectoryOnDispose)
        {
            return;
        }

        try
        {
            Directory.Delete(SpillDirectory, recursive: true);
        }
        catch (DirectoryNotFoundException)
        {
        }
    }
}

internal static class Eventually
{
    public static async Task TrueAsync(Func<bool> condition, string because, int timeoutMs = 10_000)
    {
        var deadline = Environment.TickCount64 + timeoutMs;
        while (!condition())
        {
            if (Environment.TickCount64 > deadline)
            {
                Assert.Fail($"Timed out after {timeoutMs} ms waiting until {because}.");
            }

            await Task.Delay(5);
        }
    }
}
