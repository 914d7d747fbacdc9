using System.Globalization;
using Cortensor.Portal.Accounts.Plans;
using Cortensor.Portal.Accounts.Policies;
using Cortensor.Portal.Fleet.Simulator;
using Cortensor.Portal.Keys;
using Cortensor.Portal.Metering.Usage;
using Cortensor.Portal.Metering.Writer;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Cortensor.Portal.Benchmarks.Enforcement;

internal enum VariantKind
{
    /// <summary>The load generator straight to the simulated router: the floor every gateway adds to.</summary>
    Direct,

    /// <summary>(a) In-process mode, rate limits off, no account stores: entitlements are skipped.</summary>
    NoEnforcement,

    /// <summary>(b) SQLite stores (entitlements read and cached), in-process limiter evaluating every rule.</summary>
    InProcess,

    /// <summary>(c) As (b), with the host's <c>Cortensor:HotPath:Mode=Redis</c> wiring (<c>AddCortensorRedis</c>).</summary>
    Redis,

    /// <summary>As <see cref="Redis"/>, with Postgres (<c>AddCortensorPostgresStorage</c>) as the durable store instead of SQLite.</summary>
    RedisPostgres,

    /// <summary>
    /// As <see cref="InProcess"/> (in-process hot path, SQLite stores), with the host's <c>Cortensor:Keys:Provider=Unkey</c>
    /// wiring (<c>AddCortensorUnkey</c>, section <c>Cortensor:Unkey</c>): keys issued and verified through Unkey's v2 API
    /// at <see cref="GatewaySetup.UnkeyUrl"/>.
    /// </summary>
    Unkey,
}

/// <summary>One model the gateway serves and the upstream behind it.</summary>
/// <param name="Alias">Model alias clients send.</param>
/// <param name="Upstream">Router base URL.</param>
/// <param name="Protocol"><c>Cortensor</c> (router API, ChatML prompt) or <c>OpenAICompatible</c>.</param>
internal sealed record GatewayModel(string Alias, Uri Upstream, string Protocol = "Cortensor");

/// <summary>Everything a <see cref="GatewayVariant"/> is built from.</summary>
internal sealed record GatewaySetup(VariantKind Kind, IReadOnlyList<GatewayModel> Models, string UpstreamKey)
{
    public string? RedisConnection { get; init; }

    public string RedisKeyPrefix { get; init; } = "cbench:";

    /// <summary>Npgsql connection string, for <see cref="VariantKind.RedisPostgres"/>.</summary>
    public string? PostgresConnection { get; init; }

    /// <summary>Schema for <see cref="PostgresConnection"/>.</summary>
    public string PostgresSchema { get; init; } = "portal";

    /// <summary>Keep the durable store's own usage sink (as deployed) instead of the shared in-memory one.</summary>
    public bool RealUsageSink { get; init; }

    /// <summary>More configuration keys for this variant (for example <c>Cortensor:Usage:JournalEnabled</c>), applied last.</summary>
    public IReadOnlyDictionary<string, string?>? ExtraSettings { get; init; }

    /// <summary>Listen for HTTP/2 without TLS (prior knowledge) instead of HTTP/1.1: many streams over few client connections.</summary>
    public bool Http2Cleartext { get; init; }

    /// <summary>Base URL of the Unkey API (<c>Cortensor:Unkey:BaseUrl</c>), for <see cref="VariantKind.Unkey"/>.</summary>
    public Uri? UnkeyUrl { get; init; }

    /// <summary><c>Cortensor:Unkey:RootKey</c>.</summary>
    public string UnkeyRootKey { get; init; } = "";

    /// <summary><c>Cortensor:Unkey:ApiId</c>.</summary>
    public string UnkeyApiId { get; init; } = "";

    /// <summary><c>Cortensor:Unkey:CacheTtl</c>; zero (the option's default) leaves it unset, so every request calls verifyKey.</summary>
    public TimeSpan UnkeyCacheTtl { get; init; }
}

/// <summary>
/// One gateway under test: a real <see cref="WebApplication"/> on Kestrel (127.0.0.1, a free port) composed like
/// <c>templates/content/Cortensor.Portal.Host/Program.cs</c>, with one model served by the shared simulated router,
/// and one API key issued through its <see cref="IApiKeyProvider"/>.
/// </summary>
internal sealed class GatewayVariant : IAsyncDisposable
{
    public const string Model = "bench-model";
    public const string OrgId = "org_bench";
    public const string PlanId = "bench";

    /// <summary>Far above any rate this benchmark offers: nothing is refused, every rule is still evaluated.</summary>
    private const int Huge = 1_000_000;

    /// <summary>Environment variables with this prefix override the variant's settings (<c>__</c> separates sections).</summary>
    public const string SettingPrefix = "BENCH_SETTING_";

    private readonly WebApplication _app;
    private readonly string _folder;

    private GatewayVariant(VariantKind kind, WebApplication app, string folder, Uri baseAddress, string apiKey)
    {
        Kind = kind;
        _app = app;
        _folder = folder;
        BaseAddress = baseAddress;
        ApiKey = apiKey;
    }

    public VariantKind Kind { get; }

    public string Label => Describe(Kind);

    public Uri BaseAddress { get; }

    /// <summary>The raw key issued for this run (never printed).</summary>
    public string ApiKey { get; }

    public Uri ChatCompletions => new(BaseAddress, "v1/chat/completions");

    /// <summary>The gateway's services (for example its Redis connection, to profile what it sends).</summary>
    public IServiceProvider Services => _app.Services;

    public static string Describe(VariantKind kind) => kind switch
    {
        VariantKind.Direct => "upstream direct (no gateway)",
        VariantKind.NoEnforcement => "(a) no enforcement",
        VariantKind.InProcess => "(b) in-process enforcement",
        VariantKind.Redis => "(c) Redis enforcement",
        VariantKind.Unkey => "in-process enforcement, keys from Unkey",
        _ => "Redis + Postgres enforcement",
    };

    /// <param name="kind">Which variant.</param>
    /// <param name="upstream">The simulated router every variant shares.</param>
    /// <param name="upstreamKey">Its bearer key.</param>
    /// <param name="redisConnection">StackExchange.Redis configuration; used only by <see cref="VariantKind.Redis"/>.</param>
    /// <param name="redisKeyPrefix">Prefix of every Redis key this run writes.</param>
    public static Task<GatewayVariant> StartAsync(VariantKind kind, RouterSimulatorServer upstream, string upstreamKey, string? redisConnection, string redisKeyPrefix)
    {
        ArgumentNullException.ThrowIfNull(upstream);
        return StartAsync(new GatewaySetup(kind, [new GatewayModel(Model, upstream.BaseUrl)], upstreamKey)
        {
            RedisConnection = redisConnection,
            RedisKeyPrefix = redisKeyPrefix,
        });
    }

    /// <summary>Starts a gateway as <paramref name="setup"/> describes, on 127.0.0.1 and a free port.</summary>
    public static async Task<GatewayVariant> StartAsync(GatewaySetup setup, Action<WebApplication>? map = null)
    {
        ArgumentNullException.ThrowIfNull(setup);
        var kind = setup.Kind;
        var folder = Path.Combine(Path.GetTempPath(), "cportal-bench-gw-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(folder);
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions
        {
            Args = [],
            ContentRootPath = folder,
            EnvironmentName = Environments.Production,
        });

        // Only the settings below: no appsettings, no environment variables leaking into a variant, except those named
        // BENCH_SETTING_ on purpose (a trial run's one change, e.g. --gateway-env BENCH_SETTING_Cortensor__Gateway__X=1).
        builder.Configuration.Sources.Clear();
        builder.Configuration.AddInMemoryCollection(Settings(setup));
        builder.Configuration.AddEnvironmentVariables(SettingPrefix);
        if (setup.Http2Cleartext)
        {
            builder.WebHost.ConfigureKestrel(static k => k.Listen(System.Net.IPAddress.Loopback, 0, static l => l.Protocols = Microsoft.AspNetCore.Server.Kestrel.Core.HttpProtocols.Http2));
        }
        else
        {
            builder.WebHost.UseUrls("http://127.0.0.1:0");
        }

        // The host logs every request at Information; that console I/O would dwarf what is measured here.
        builder.Logging.ClearProviders();
        builder.Logging.AddConsole();
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        builder.Logging.AddFilter("Microsoft.AspNetCore.Hosting.Diagnostics", LogLevel.None); // as the host's appsettings.json

        // As the host's Program.cs, minus the development bootstrap (the key is issued below).
        builder.Services.AddCortensorGateway().BindConfiguration(builder.Configuration);
        builder.Services.AddCortensorMetering(o => o.SpillDirectory = Path.Combine(folder, "spill"));
        // Diagnostics only (the host does not bind it): BENCH_SETTING_Cortensor__Usage__MaxBatchDelay etc. move the usage
        // writer's batches out of a timed window, to tell their share of a tail from the rest.
        builder.Services.Configure<UsageWriterOptions>(builder.Configuration.GetSection("Cortensor:Usage"));
        if (kind == VariantKind.RedisPostgres)
        {
            ArgumentException.ThrowIfNullOrWhiteSpace(setup.PostgresConnection);
            builder.Services.AddCortensorPostgresStorage(o =>
            {
                o.ConnectionString = setup.PostgresConnection;
                o.Schema = setup.PostgresSchema;
            });
        }
        else if (kind != VariantKind.NoEnforcement)
        {
            builder.Services.AddCortensorSqliteStorage(o => o.DatabasePath = Path.Combine(folder, "portal.db"));
        }

        if (kind is VariantKind.Redis or VariantKind.RedisPostgres)
        {
            var redisConnection = setup.RedisConnection;
            ArgumentException.ThrowIfNullOrWhiteSpace(redisConnection);
            builder.Services.AddCortensorRedis(o =>
            {
                // As the host: Cortensor:Redis settings (for example ReleaseDelay) from the gateway's configuration.
                builder.Configuration.GetSection("Cortensor:Redis").Bind(o);
                o.ConnectionString = redisConnection;
                o.KeyPrefix = setup.RedisKeyPrefix;
            });
        }

        if (kind == VariantKind.Unkey)
        {
            // As the host's Cortensor:Keys:Provider=Unkey: keys issued, verified and revoked in Unkey, limits in process.
            ArgumentNullException.ThrowIfNull(setup.UnkeyUrl);
            builder.Services.AddCortensorUnkey(o => builder.Configuration.GetSection("Cortensor:Unkey").Bind(o));
        }

        // Usage events go to the same in-memory sink in every variant, so the background writer costs the same
        // everywhere and the variants differ only in enforcement (SQLite's usage writes are the ingest benchmark's job).
        if (!setup.RealUsageSink)
        {
            builder.Services.Replace(ServiceDescriptor.Singleton<IUsageSink>(static sp => sp.GetRequiredService<InMemoryUsageSink>()));
        }

        var app = builder.Build();
        app.MapCortensorGateway();
        map?.Invoke(app);
        try
        {
            await app.StartAsync();
            var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()?.Addresses.First()
                ?? throw new InvalidOperationException("Kestrel reported no address.");
            var baseAddress = new Uri(address.EndsWith('/') ? address : address + "/");

            if (kind != VariantKind.NoEnforcement)
            {
                await SeedAccountsAsync(app.Services, setup.Models.Select(static m => m.Alias));
            }

            var issued = await app.Services.GetRequiredService<IApiKeyProvider>().IssueAsync(new IssueApiKeyRequest
            {
                OrgId = OrgId,
                Name = "benchmark " + kind,
                Environment = ApiKeyEnvironment.Test,
            });
            return new GatewayVariant(kind, app, folder, baseAddress, issued.Secret);
        }
        catch
        {
            await app.DisposeAsync();
            throw;
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        try
        {
            Directory.Delete(_folder, recursive: true);
        }
        catch (IOException)
        {
            // Left in the temp folder; harmless.
        }
    }

    /// <summary>The org's plan and an allow policy for the model, so entitlements come from the store.</summary>
    private static async Task SeedAccountsAsync(IServiceProvider services, IEnumerable<string> models)
    {
        var now = DateTimeOffset.UtcNow;
        var plans = services.GetRequiredService<IPlanStore>();
        await plans.UpsertPlanAsync(new Plan { Id = PlanId, Name = "Benchmark", CreatedAt = now });
        await plans.AddSubscriptionAsync(new PlanSubscription
        {
            Id = "sub_bench",
            OrgId = OrgId,
            PlanId = PlanId,
            PeriodStart = now.AddHours(-1),
            CreatedAt = now,
        });
        foreach (var model in models)
        {
            await services.GetRequiredService<IModelAccessPolicyStore>().SetAsync(new ModelAccessPolicy
            {
                SubjectType = PolicySubjectType.Plan,
                SubjectId = PlanId,
                ModelAlias = model,
                Effect = PolicyEffect.Allow,
                CreatedAt = now,
            });
        }
    }

    private static Dictionary<string, string?> Settings(GatewaySetup setup)
    {
        var kind = setup.Kind;
        var settings = new Dictionary<string, string?>
        {
            ["Cortensor:HotPath:Mode"] = kind is VariantKind.Redis or VariantKind.RedisPostgres ? "Redis" : "InProcess",
            ["Cortensor:RateLimits:Enabled"] = kind == VariantKind.NoEnforcement ? "false" : "true",
        };

        if (kind == VariantKind.Unkey)
        {
            // Only what a deployment must set; every other Unkey option keeps its default.
            settings["Cortensor:Keys:Provider"] = "Unkey";
            settings["Cortensor:Unkey:BaseUrl"] = setup.UnkeyUrl?.ToString();
            settings["Cortensor:Unkey:ApiId"] = setup.UnkeyApiId;
            settings["Cortensor:Unkey:RootKey"] = setup.UnkeyRootKey;
            if (setup.UnkeyCacheTtl > TimeSpan.Zero)
            {
                settings["Cortensor:Unkey:CacheTtl"] = setup.UnkeyCacheTtl.ToString("c", CultureInfo.InvariantCulture);
            }
        }

        for (var i = 0; i < setup.Models.Count; i++)
        {
            var model = setup.Models[i];
            var router = "upstream" + i.ToString(CultureInfo.InvariantCulture);
            var pool = "pool" + i.ToString(CultureInfo.InvariantCulture);
            settings[$"Cortensor:Fleet:Routers:{router}:BaseUrl"] = model.Upstream.ToString();
            settings[$"Cortensor:Fleet:Routers:{router}:ApiKey"] = setup.UpstreamKey;
            settings[$"Cortensor:Fleet:Routers:{router}:Protocol"] = model.Protocol;
            settings[$"Cortensor:Fleet:Pools:{pool}:PromptFormat"] = "ChatML";
            // The benchmark's stand-in routers keep concurrent streams apart, and one (router, session) stands for a
            // whole fleet here: the gateway's overhead is measured, not a pool's stream capacity.
            settings[$"Cortensor:Fleet:Pools:{pool}:RouterQueues"] = "NonBlocking";
            if (model.Protocol == "OpenAICompatible")
            {
                settings[$"Cortensor:Fleet:Pools:{pool}:UpstreamModel"] = model.Alias;
            }

            settings[$"Cortensor:Fleet:Pools:{pool}:Members:0:Router"] = router;
            settings[$"Cortensor:Fleet:Pools:{pool}:Members:0:SessionId"] = "1";
            settings[$"Cortensor:Fleet:Models:{model.Alias}:Pool"] = pool;
            settings[$"Cortensor:Fleet:Models:{model.Alias}:ContextTokens"] = "8192";
            settings[$"Cortensor:Fleet:Models:{model.Alias}:MaxOutputTokens"] = "256";
        }

        if (kind != VariantKind.NoEnforcement)
        {
            // The plan's tier, so the limits apply only if the plan was read from the store.
            foreach (var scope in new[] { "Key", "Org" })
            {
                var prefix = $"Cortensor:RateLimits:Plans:{PlanId}:{scope}:";
                settings[prefix + "RequestsPerSecond"] = Huge.ToString(CultureInfo.InvariantCulture);
                settings[prefix + "RequestsPerMinute"] = (60 * Huge).ToString(CultureInfo.InvariantCulture);
                settings[prefix + "TokensPerMinute"] = (60 * Huge).ToString(CultureInfo.InvariantCulture); // the limiter's ceiling: one token per µs
                settings[prefix + "ConcurrentRequests"] = Huge.ToString(CultureInfo.InvariantCulture);
            }
        }

        foreach (var (key, value) in setup.ExtraSettings ?? new Dictionary<string, string?>())
        {
            settings[key] = value;
        }

        return settings;
    }
}
