using Cortensor.Portal.Keys;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Cortensor.Portal.Gateway.Hosting;

/// <summary>The development key (section <c>Cortensor:DevelopmentKey</c>): who gets it, and where it may be issued.</summary>
public sealed class DevelopmentBootstrapOptions
{
    /// <summary>Configuration section bound by <c>BindConfiguration</c>: <c>Enabled</c> and <c>OrgId</c>.</summary>
    public const string SectionName = "Cortensor:DevelopmentKey";

    /// <summary>Start of the line the key is printed on; scripts and tests look for it.</summary>
    public const string KeyLinePrefix = "Cortensor Portal development API key: ";

    /// <summary>
    /// Whether the key is issued: <c>true</c> in any environment (with a warning outside Development), <c>false</c>
    /// never. Unset, only when the host environment is Development, so a production host never creates a
    /// <c>pk_test_</c> key in its database. <value>The default value is null (Development only).</value>
    /// </summary>
    public bool? Enabled { get; set; }

    /// <summary>Org the development key belongs to. <value>The default value is <c>org_dev</c>.</value></summary>
    public string OrgId { get; set; } = "org_dev";

    /// <summary>Where the one-time key line goes. <value>The default is standard output.</value></summary>
    public TextWriter Output { get; set; } = Console.Out;
}

/// <summary>
/// Creates the dev org's first <c>pk_test_</c> key so a fresh portal can be called at once: in the Development
/// environment, or anywhere when <see cref="DevelopmentBootstrapOptions.Enabled"/> says so.
/// </summary>
internal sealed partial class DevelopmentBootstrapService(
    IApiKeyProvider keys,
    IOptions<DevelopmentBootstrapOptions> options,
    IHostEnvironment environment,
    ILogger<DevelopmentBootstrapService> logger) : IHostedService
{
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        var development = environment.IsDevelopment();
        if (!(options.Value.Enabled ?? development))
        {
            // Not even a lookup: the key store of a production host is left exactly as it was.
            Log.KeyDisabled(logger, environment.EnvironmentName);
            return;
        }

        if (!development)
        {
            Log.EnabledOutsideDevelopment(logger, environment.EnvironmentName, options.Value.OrgId);
        }

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

        [LoggerMessage(EventId = 1202, EventName = "DevelopmentKeyDisabled", Level = LogLevel.Information,
            Message = "No development key issued: the environment is {EnvironmentName}. Set Cortensor:DevelopmentKey:Enabled=true to issue one anyway, or issue keys through IApiKeyProvider")]
        public static partial void KeyDisabled(ILogger logger, string environmentName);

        [LoggerMessage(EventId = 1203, EventName = "DevelopmentKeyOutsideDevelopment", Level = LogLevel.Warning,
            Message = "Cortensor:DevelopmentKey:Enabled=true in environment {EnvironmentName}: org {OrgId} gets a pk_test_ development key in this key store. Turn it off for production")]
        public static partial void EnabledOutsideDevelopment(ILogger logger, string environmentName, string orgId);
    }
}
