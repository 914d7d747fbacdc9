using Cortensor.Portal.Keys;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Cortensor.Portal.Gateway.Hosting;

public sealed class DevelopmentBootstrapOptions
{
    /// <summary>Start of the line the key is printed on; scripts and tests look for it.</summary>
    public const string KeyLinePrefix = "Cortensor Portal development API key: ";

    /// <summary>Org the development key belongs to. <value>The default value is <c>org_dev</c>.</value></summary>
    public string OrgId { get; set; } = "org_dev";

    /// <summary>Where the one-time key line goes. <value>The default is standard output.</value></summary>
    public TextWriter Output { get; set; } = Console.Out;
}

/// <summary>Creates the dev org's first <c>pk_test_</c> key so a fresh portal can be called at once.</summary>
internal sealed partial class DevelopmentBootstrapService(
    IApiKeyProvider keys,
    IOptions<DevelopmentBootstrapOptions> options,
    ILogger<DevelopmentBootstrapService> logger) : IHostedService
{
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        var orgId = options.Value.OrgId;
        var existing = await keys.ListAsync(orgId, cancellationToken);
        if (existing.Count > 0)
        {
            Log.KeyExists(logger, orgId, existing.Count);
            return;
        }

        var issued = await keys.IssueAsync(new IssueApiKeyRequest { OrgId = orgId, Name = "development", Environment = ApiKeyEnvironment.Test }, cancellationToken);

        // Standard output, not the logger: raw keys never go to logs. It is shown this once.
        var output = options.Value.Output;
        await output.WriteLineAsync(DevelopmentBootstrapOptions.KeyLinePrefix + issued.Secret);
        await output.FlushAsync(cancellationToken);
        Log.KeyIssued(logger, orgId, issued.Record.KeyId, issued.Record.DisplayPrefix);
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    private static partial class Log
    {
        [LoggerMessage(EventId = 1200, Level = LogLevel.Information, Message = "Development org {OrgId} already has {Count} key(s); none printed")]
        public static partial void KeyExists(ILogger logger, string orgId, int count);

        [LoggerMessage(EventId = 1201, Level = LogLevel.Information, Message = "Issued development key {KeyId} ({DisplayPrefix}…) for org {OrgId}")]
        public static partial void KeyIssued(ILogger logger, string orgId, string keyId, string displayPrefix);
    }
}
