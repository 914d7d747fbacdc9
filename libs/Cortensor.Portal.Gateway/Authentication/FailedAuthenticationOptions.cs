using System.ComponentModel.DataAnnotations;
using Cortensor.Portal.Gateway.Hosting;
using Microsoft.Extensions.Options;

namespace Cortensor.Portal.Gateway.Authentication;

/// <summary>
/// Limits on requests that fail authentication (no key, a malformed, unknown, revoked, expired or disabled key), per
/// client address: section <c>Cortensor:Gateway:FailedAuthentication</c>. Validated on start.
/// </summary>
/// <remarks>
/// Each address (an IPv4 address, or the /64 of an IPv6 one) may fail <see cref="Burst"/> times at once; the allowance
/// refills at <see cref="Burst"/> per <see cref="Window"/> (GCRA). Past it every request from that address, with a
/// valid key or not, is answered 429 before its key is verified, until the allowance has refilled by one.
/// </remarks>
public sealed class FailedAuthenticationOptions
{
    /// <summary>Off: failures are still aggregated (never one usage row each), but no address is refused. <value>The default value is true.</value></summary>
    public bool Enabled { get; set; } = true;

    /// <summary>Failures an address may have in a burst. <value>The default value is 20.</value></summary>
    [Range(1, 1_000_000)]
    public int Burst { get; set; } = 20;

    /// <summary>Time in which a spent allowance refills completely: 1 s to 1 day. <value>The default value is 1 min.</value></summary>
    public TimeSpan Window { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>How often the aggregate log lines (one per address and reason) are written: 1 s to 1 h. <value>The default value is 1 min.</value></summary>
    public TimeSpan ReportInterval { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>
    /// Addresses tracked at once: (address, reason) pairs counted per report interval, and refused addresses remembered
    /// for the early 429. Failures beyond it are still counted per reason, without their address. <value>The default value is 10,000.</value>
    /// </summary>
    [Range(1, 1_000_000)]
    public int MaxTrackedAddresses { get; set; } = 10_000;
}

/// <summary>The TimeSpan ranges of <see cref="FailedAuthenticationOptions"/> (RangeAttribute on TimeSpan needs reflection, which trimming forbids).</summary>
internal sealed class FailedAuthenticationOptionsValidator : IValidateOptions<CortensorGatewayOptions>
{
    private const string Section = "Cortensor:Gateway:FailedAuthentication";

    public ValidateOptionsResult Validate(string? name, CortensorGatewayOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var failed = options.FailedAuthentication;
        if (failed is null)
        {
            return ValidateOptionsResult.Fail($"{Section} must not be null.");
        }

        var errors = new List<string>();
        Check(errors, nameof(FailedAuthenticationOptions.Window), failed.Window, TimeSpan.FromSeconds(1), TimeSpan.FromDays(1));
        Check(errors, nameof(FailedAuthenticationOptions.ReportInterval), failed.ReportInterval, TimeSpan.FromSeconds(1), TimeSpan.FromHours(1));
        return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
    }

    private static void Check(List<string> errors, string setting, TimeSpan value, TimeSpan min, TimeSpan max)
    {
        if (value < min || value > max)
        {
            errors.Add($"{Section}:{setting} must be between {min} and {max}; it is {value}.");
        }
    }
}
