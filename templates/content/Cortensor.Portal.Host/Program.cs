// Cortensor Portal host: an OpenAI-compatible inference API in front of Cortensor router pools.
// Routers are configured under "Cortensor:Fleet" (see appsettings.Routers.example.json); with none the host refuses to
// start, unless Cortensor:Fleet:UseSimulatedRouters=true serves the default catalog from built-in simulated routers.
// `dotnet run` runs as Development (Properties/launchSettings.json), whose appsettings.Development.json sets that switch
// and Cortensor:DevelopmentKey:Enabled, so a fresh checkout serves simulated answers and prints a pk_test_ key on first
// start. Any other environment gets neither unless configured. Data lives in an embedded SQLite file under App_Data;
// set ConnectionStrings:Portal to use Postgres (Supabase works).
// Hot-path state (key cache, rate limits, change notices) is in-process by default; with several replicas set
// Cortensor:HotPath:Mode to Redis and ConnectionStrings:Redis so every replica shares it.
// API keys come from Cortensor:Keys:Provider: Local (the database), Redis (the database behind a shared Redis cache)
// or Unkey (section Cortensor:Unkey; keep the root key in Cortensor__Unkey__RootKey, not in a file).
using Cortensor.Portal.Keys;
using Cortensor.Portal.Keys.Caching;
using Cortensor.Portal.Keys.Changes;
using Cortensor.Portal.Keys.Format;
using Cortensor.Portal.Keys.Local;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

var builder = WebApplication.CreateBuilder(args);

var dataDirectory = builder.Configuration["Cortensor:Storage:DataDirectory"]
    ?? Path.Combine(builder.Environment.ContentRootPath, "App_Data");

// Cortensor:Fleet (routers, pools, models, UseSimulatedRouters) and Cortensor:DevelopmentKey are read here.
builder.Services.AddCortensorGateway()
    .BindConfiguration(builder.Configuration)
    .AddDevelopmentBootstrap();

// Usage events that cannot reach the database wait here until it is back.
builder.Services.AddCortensorMetering(o => o.SpillDirectory = Path.Combine(dataDirectory, "spill"));

var postgres = builder.Configuration.GetConnectionString("Portal");
if (string.IsNullOrWhiteSpace(postgres))
{
    builder.Services.AddCortensorSqliteStorage(o => o.DatabasePath = Path.Combine(dataDirectory, "portal.db"));
}
else
{
    builder.Services.AddCortensorPostgresStorage(o =>
    {
        builder.Configuration.GetSection("Cortensor:Storage:Postgres").Bind(o); // Schema, UsageRetentionMonths, …
        o.ConnectionString = postgres;
    });
}

// Cortensor:HotPath:Mode (InProcess | Redis) decides where rate limits and change notices live.
// Cortensor:Keys:Provider (Local | Redis | Unkey) decides where keys are verified; when it is not set it follows the
// hot path (Redis mode → Redis, else Local), as before the setting existed.
var hotPathMode = Setting("Cortensor:HotPath:Mode", "InProcess", "Redis");
var keyProvider = Setting("Cortensor:Keys:Provider", "Local", "Redis", "Unkey") ?? (hotPathMode == "Redis" ? "Redis" : "Local");
hotPathMode ??= "InProcess";
if (keyProvider == "Redis" && hotPathMode != "Redis")
{
    throw new InvalidOperationException(
        "Cortensor:Keys:Provider=Redis caches keys in the Redis hot-path store: also set Cortensor:HotPath:Mode=Redis and ConnectionStrings:Redis.");
}

if (hotPathMode == "Redis")
{
    builder.Services.AddCortensorRedis(o =>
    {
        builder.Configuration.GetSection("Cortensor:Redis").Bind(o); // KeyPrefix, OperationTimeout, cache TTLs, …
        o.ConnectionString = builder.Configuration.GetConnectionString("Redis") ?? o.ConnectionString;
    });
}

switch (keyProvider)
{
    case "Local" when hotPathMode == "Redis":
        // Keys straight from the database behind the in-process cache; revocations still reach every replica over Redis.
        builder.Services.Replace(ServiceDescriptor.Singleton<IApiKeyProvider>(static sp => new CachingApiKeyProvider(
            sp.GetRequiredService<LocalApiKeyProvider>(),
            sp.GetRequiredService<ApiKeyFormat>(),
            sp.GetRequiredService<TimeProvider>(),
            sp.GetRequiredService<IOptions<ApiKeyCacheOptions>>(),
            sp.GetRequiredService<IHotPathChangeFeed>())));
        break;
    case "Unkey":
        // Keys are issued, verified and revoked in Unkey; limits and change notices follow Cortensor:HotPath:Mode.
        builder.Services.AddCortensorUnkey(o => builder.Configuration.GetSection("Cortensor:Unkey").Bind(o)); // ApiId, RootKey, ServeStaleFor, …
        break;
}

var app = builder.Build();

app.MapCortensorGateway();

app.Run();

// One of the allowed values (any case), or null when the setting is not set.
string? Setting(string key, params string[] allowed)
{
    var value = builder.Configuration[key];
    if (string.IsNullOrWhiteSpace(value))
    {
        return null;
    }

    return allowed.FirstOrDefault(a => string.Equals(a, value.Trim(), StringComparison.OrdinalIgnoreCase))
        ?? throw new InvalidOperationException($"{key} must be {string.Join(", ", allowed[..^1])} or {allowed[^1]}, not '{value}'.");
}

/// <summary>Entry point; public so tests can host it with WebApplicationFactory.</summary>
public partial class Program;
