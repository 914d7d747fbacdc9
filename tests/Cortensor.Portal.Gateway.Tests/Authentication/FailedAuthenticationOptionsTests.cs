using Cortensor.Portal.Gateway.Authentication;
using Cortensor.Portal.Gateway.Hosting;
using Cortensor.Portal.Gateway.Tests.Support;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace Cortensor.Portal.Gateway.Tests.Authentication;

public sealed class FailedAuthenticationOptionsTests
{
    [Theory]
    [InlineData(0, false)]
    [InlineData(1, true)]
    [InlineData(20, true)]
    [InlineData(1_000_001, false)]
    public void Burst_IsAtLeastOne(int burst, bool valid)
    {
        var options = new CortensorGatewayOptions { FailedAuthentication = { Burst = burst } };

        Assert.Equal(valid, new CortensorGatewayOptionsValidator().Validate(null, options).Succeeded);
    }

    [Theory]
    [InlineData(0.5, 60.0, "FailedAuthentication:Window")]
    [InlineData(86_401.0, 60.0, "FailedAuthentication:Window")]
    [InlineData(60.0, 0.0, "FailedAuthentication:ReportInterval")]
    [InlineData(60.0, 3_601.0, "FailedAuthentication:ReportInterval")]
    [InlineData(1.0, 1.0, null)]
    [InlineData(86_400.0, 3_600.0, null)]
    public void Window_AndReportInterval_AreWithinTheirRanges(double windowSeconds, double reportSeconds, string? failing)
    {
        var options = new CortensorGatewayOptions
        {
            FailedAuthentication = { Window = TimeSpan.FromSeconds(windowSeconds), ReportInterval = TimeSpan.FromSeconds(reportSeconds) },
        };

        var result = new FailedAuthenticationOptionsValidator().Validate(null, options);

        Assert.Equal(failing is null, result.Succeeded);
        if (failing is not null)
        {
            Assert.Contains("Cortensor:Gateway:" + failing, result.FailureMessage, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task InvalidSettings_TheHostRefusesToStart()
    {
        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => GatewayHost.StartAsync(services =>
            services.Configure<CortensorGatewayOptions>(o => o.FailedAuthentication.Window = TimeSpan.Zero)));

        Assert.Contains("FailedAuthentication:Window", error.Message, StringComparison.Ordinal);
    }
}
