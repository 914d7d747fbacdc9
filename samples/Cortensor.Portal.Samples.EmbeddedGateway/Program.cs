// An ordinary ASP.NET Core app with endpoints of its own. Two lines add the Cortensor gateway:
// AddCortensorGateway() (with its settings from the "Cortensor" configuration section) and MapCortensorGateway().
// Routers come from Cortensor:Fleet; in Development, appsettings.Development.json sets
// Cortensor:Fleet:UseSimulatedRouters so the default catalog is served by simulated routers. Issue keys through
// IApiKeyProvider (see /dev/keys below).
using Cortensor.Portal.Keys;

var builder = WebApplication.CreateBuilder(args);
builder.Services.AddCortensorGateway().BindConfiguration(builder.Configuration);

var app = builder.Build();

// The app's own endpoints.
app.MapGet("/", () => "Acme orders service (with an OpenAI-compatible gateway under /v1)");
app.MapGet("/orders/{id:int}", (int id) => Results.Ok(new Order(id, "shipped")));

// A development-only way to get a key for this sample; a real app issues keys from its own account pages.
if (app.Environment.IsDevelopment())
{
    app.MapPost("/dev/keys", async (IApiKeyProvider keys) =>
    {
        var issued = await keys.IssueAsync(new IssueApiKeyRequest { OrgId = "org_sample", Name = "sample" });
        return Results.Ok(new IssuedKey(issued.Secret, issued.Record.KeyId));
    });
}

app.MapCortensorGateway();

app.Run();

internal sealed record Order(int Id, string Status);

internal sealed record IssuedKey(string Key, string KeyId);

/// <summary>Entry point; public so tests can host it.</summary>
public partial class Program;
