using System.ComponentModel.DataAnnotations;
using Microsoft.Extensions.Options;

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

    /// <summary>When the router call may start while a remote rate-limit decision is still on its way (section <c>Cortensor:Gateway:SpeculativeAdmission</c>).</summary>
    [ValidateObjectMembers]
    public SpeculativeAdmissionOptions SpeculativeAdmission { get; set; } = new();

    /// <summary>Limits on requests that fail authentication, per client address (section <c>Cortensor:Gateway:FailedAuthentication</c>).</summary>
    [ValidateObjectMembers]
    public Authentication.FailedAuthenticationOptions FailedAuthentication { get; set; } = new();
}

/// <summary>
/// Speculative admission: when the rate limiter answers asynchronously (Redis), a key whose last decision left ample
/// room on every rule has its router call started while the decision is in flight. The client still gets exactly
/// the shared limiter's answer: no response byte is sent before the decision, and a refusal cancels the router call
/// and answers 429 as usual. What changes is only what a router may see: a request refused in that window (other
/// replicas used the margin up meanwhile) reaches a router and is cancelled.
/// </summary>
public sealed class SpeculativeAdmissionOptions
{
    /// <summary>Off: every request waits for its decision before the router call. <value>The default value is true.</value></summary>
    public bool Enabled { get; set; } = true;

    /// <summary>
    /// Share of each rule's quota that must have been left after the key's last decision (and, for token rules,
    /// on top of this request's tokens). A rule whose quota is too small for the margin never speculates.
    /// <value>The default value is 0.2.</value>
    /// </summary>
    [Range(0.0, 1.0)]
    public double Headroom { get; set; } = 0.2;

    /// <summary>How old the key's last decision may be: 1 ms to 1 min. <value>The default value is 1 s.</value></summary>
    public TimeSpan MaxAge { get; set; } = TimeSpan.FromSeconds(1);
}

/// <summary>Source-generated data-annotation validation (no reflection).</summary>
[OptionsValidator]
internal sealed partial class CortensorGatewayOptionsValidator : IValidateOptions<CortensorGatewayOptions>;

/// <summary>The TimeSpan ranges (RangeAttribute on TimeSpan needs reflection, which trimming forbids).</summary>
internal sealed class SpeculativeAdmissionOptionsValidator : IValidateOptions<CortensorGatewayOptions>
{
    private static readonly TimeSpan MinAge = TimeSpan.FromMilliseconds(1);
    private static readonly TimeSpan MaxAge = TimeSpan.FromMinutes(1);

    public ValidateOptionsResult Validate(string? name, CortensorGatewayOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var age = options.SpeculativeAdmission.MaxAge;
        return age < MinAge || age > MaxAge
            ? ValidateOptionsResult.Fail($"Cortensor:Gateway:SpeculativeAdmission:MaxAge must be between {MinAge} and {MaxAge}; it is {age}.")
            : ValidateOptionsResult.Success;
    }
}
