using System.ComponentModel.DataAnnotations;

namespace Cortensor.Portal.Gateway.Hosting;

/// <summary>Settings of the gateway endpoints. Validated on start.</summary>
public sealed class CortensorGatewayOptions
{
    public const string SectionName = "Cortensor:Gateway";

    /// <summary>Largest accepted request body. Larger bodies get 413. <value>The default value is 1 MiB.</value></summary>
    [Range(1024, 64 * 1024 * 1024)]
    public int MaxRequestBodyBytes { get; set; } = 1024 * 1024;

    /// <summary><c>Retry-After</c> sent with 503 when no router can take the request. <value>The default value is 2.</value></summary>
    [Range(1, 3600)]
    public int UnavailableRetryAfterSeconds { get; set; } = 2;
}

/// <summary>Source-generated data-annotation validation (no reflection).</summary>
[Microsoft.Extensions.Options.OptionsValidator]
internal sealed partial class CortensorGatewayOptionsValidator : Microsoft.Extensions.Options.IValidateOptions<CortensorGatewayOptions>;
