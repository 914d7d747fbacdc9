// Cortensor Portal host: an OpenAI-compatible inference API in front of Cortensor router pools.
// With no configuration it serves the default model catalog from built-in simulated routers, keeps keys in
// memory, and prints a development API key once on start. Configure real routers under "Cortensor:Fleet".
var builder = WebApplication.CreateBuilder(args);

builder.Services.AddCortensorGateway()
    .BindConfiguration(builder.Configuration)
    .AddDevelopmentBootstrap();

var app = builder.Build();

app.MapCortensorGateway();

app.Run();

/// <summary>Entry point; public so tests can host it with WebApplicationFactory.</summary>
public partial class Program;
