using Cortensor.Portal.Metering.Tests.TestDoubles;
using Cortensor.Portal.Metering.Usage;
using Cortensor.Portal.Metering.Writer;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace Cortensor.Portal.Metering.Tests.DependencyInjection;

public sealed class CortensorMeteringServiceCollectionExtensionsTests
{
    [Fact]
    public void AddCortensorMetering_CalledTwice_RegistersOneWriter()
    {
        var once = new ServiceCollection();
        once.AddCortensorMetering();
        var twice = new ServiceCollection();
        twice.AddCortensorMetering();
        var builder = twice.AddCortensorMetering(o => o.SpillDirectory = WriterHarness.NewTempDirectory());

        Assert.Same(twice, builder.Services);
        Assert.Single(twice, d => d.ServiceType == typeof(UsageWriter));
        Assert.Single(twice, d => d.ServiceType == typeof(IUsageRecorder));
        Assert.Single(twice, d => d.ServiceType == typeof(IUsageSink));
        Assert.Single(twice, d => d.ServiceType == typeof(IHostedService));
        Assert.Single(twice, d => d.ServiceType == typeof(TimeProvider));
        Assert.Equal(2, twice.Count(d => d.ServiceType == typeof(IValidateOptions<UsageWriterOptions>)));
        Assert.Equal(once.Count + 1, twice.Count); // + the second call's Configure

        using var provider = twice.BuildServiceProvider(new ServiceProviderOptions { ValidateOnBuild = true, ValidateScopes = true });
        var writer = provider.GetRequiredService<UsageWriter>();
        Assert.Same(writer, provider.GetRequiredService<IUsageRecorder>());
        Assert.Same(writer, Assert.Single(provider.GetServices<IHostedService>()));
        Assert.IsType<InMemoryUsageSink>(provider.GetRequiredService<IUsageSink>());
        Assert.Same(TimeProvider.System, provider.GetRequiredService<TimeProvider>());
    }

    [Fact]
    public async Task AddCortensorMetering_QueueCapacityZero_HostStartFailsValidation()
    {
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Services.AddCortensorMetering(o =>
        {
            o.QueueCapacity = 0;
            o.SpillDirectory = WriterHarness.NewTempDirectory();
        });
        using var host = builder.Build();

        var ex = await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync());
        Assert.Contains(nameof(UsageWriterOptions.QueueCapacity), ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void AddCortensorMetering_RetryMaxBelowInitial_OptionsFailValidation()
    {
        var services = new ServiceCollection();
        services.AddCortensorMetering(o =>
        {
            o.RetryInitialDelay = TimeSpan.FromSeconds(10);
            o.RetryMaxDelay = TimeSpan.FromSeconds(1);
        });
        using var provider = services.BuildServiceProvider();

        var ex = Assert.Throws<OptionsValidationException>(() => provider.GetRequiredService<IOptions<UsageWriterOptions>>().Value);
        Assert.Contains(nameof(UsageWriterOptions.RetryMaxDelay), ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void AddCortensorMetering_SinkRegisteredBefore_IsKept()
    {
        var sink = new RecordingSink();
        var services = new ServiceCollection();
        services.AddSingleton<IUsageSink>(sink);
        services.AddCortensorMetering();
        using var provider = services.BuildServiceProvider();

        Assert.Same(sink, provider.GetRequiredService<IUsageSink>());
    }

    [Fact]
    public void AddCortensorMetering_SinkReplacedAfter_WriterUsesReplacement()
    {
        var sink = new RecordingSink();
        var services = new ServiceCollection();
        services.AddCortensorMetering();
        services.Replace(ServiceDescriptor.Singleton<IUsageSink>(sink));

        Assert.Single(services, d => d.ServiceType == typeof(IUsageSink));
        using var provider = services.BuildServiceProvider();
        Assert.Same(sink, provider.GetRequiredService<IUsageSink>());
    }

    [Fact]
    public async Task AddCortensorMetering_HostStartAndStop_RecordsReachDefaultInMemorySink()
    {
        var spill = WriterHarness.NewTempDirectory();
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Services.AddCortensorMetering((o, _) => o.SpillDirectory = spill);
        using var host = builder.Build();

        await host.StartAsync();
        var recorder = host.Services.GetRequiredService<IUsageRecorder>();
        for (var i = 0; i < 10; i++)
        {
            recorder.Record(TestRecords.Create(TestRecords.Id(i)));
        }

        await host.StopAsync();

        Assert.Equal(10, host.Services.GetRequiredService<InMemoryUsageSink>().Count);
        Assert.Equal(Path.GetFullPath(spill), host.Services.GetRequiredService<UsageWriter>().SpillDirectory);
        Directory.Delete(spill, recursive: true);
    }
}
