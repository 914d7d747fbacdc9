// Cortensor Portal host: an OpenAI-compatible inference API in front of Cortensor router pools.
// With no configuration it serves the default model catalog from built-in simulated routers, keeps its data in
// an embedded SQLite file under App_Data, and prints a development API key on first start.
// Set ConnectionStrings:Portal to use Postgres (Supabase works); configure real routers under "Cortensor:Fleet".
// Hot-path state (key cache, rate limits, change notices) is in-process by default; with several replicas set
// Cortensor:HotPath:Mode to Redis and ConnectionStrings:Redis so every replica shares it.
var builder = WebApplication.CreateBuilder(args);

var dataDirectory = builder.Configuration["Cortensor:Storage:DataDirectory"]
    ?? Path.Combine(builder.Environment.ContentRootPath, "App_Data");

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

var hotPathMode = builder.Configuration["Cortensor:HotPath:Mode"] ?? "InProcess";
if (string.Equals(hotPathMode, "Redis", StringComparison.OrdinalIgnoreCase))
{
    builder.Services.AddCortensorRedis(o =>
    {
        builder.Configuration.GetSection("Cortensor:Redis").Bind(o); // KeyPrefix, OperationTimeout, cache TTLs, …
        o.ConnectionString = builder.Configuration.GetConnectionString("Redis") ?? o.ConnectionString;
    });
}
else if (!string.Equals(hotPathMode, "InProcess", StringComparison.OrdinalIgnoreCase))
{
    throw new InvalidOperationException($"Cortensor:HotPath:Mode must be InProcess or Redis, not '{hotPathMode}'.");
}

var app = builder.Build();

app.MapCortensorGateway();

app.Run();

/// <summary>Entry point; public so tests can host it with WebApplicationFactory.</summary>
public partial class Program;
