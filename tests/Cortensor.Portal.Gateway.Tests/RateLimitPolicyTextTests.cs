using Cortensor.Portal.Gateway.Enforcement;
using Cortensor.Portal.Metering.RateLimiting;

namespace Cortensor.Portal.Gateway.Tests;

/// <summary><c>RateLimit-Policy</c> is built once per set of policies, and a different set never gets another set's text.</summary>
public sealed class RateLimitPolicyTextTests
{
    private static readonly TimeSpan Minute = TimeSpan.FromMinutes(1);

    [Fact]
    public void Same_policies_and_rules_reuse_one_text_whatever_the_counts_left()
    {
        var rpm = new RateLimitRule("rpm", RateLimitClass.Requests, 3, Minute);
        var tpm = new RateLimitRule("tpm", RateLimitClass.Tokens, 1000, Minute);
        RateLimitCounter[] first = [new("key-rpm", rpm, 2, TimeSpan.FromSeconds(20)), new("key-tpm", tpm, 990, TimeSpan.FromSeconds(1))];
        RateLimitCounter[] later = [new("key-rpm", rpm with { }, 0, TimeSpan.FromSeconds(60)), new("key-tpm", tpm with { }, 5, TimeSpan.FromSeconds(59))];

        var text = RateLimitHeaders.PolicyText(first);

        Assert.Equal("\"key-rpm\";q=3;w=60, \"key-tpm\";q=1000;qu=\"tokens\";w=60", text);
        Assert.Same(text, RateLimitHeaders.PolicyText(later));
    }

    [Fact]
    public void Another_quota_window_class_name_or_order_gets_its_own_text()
    {
        var rpm = new RateLimitRule("rpm", RateLimitClass.Requests, 7, Minute);
        var rps = new RateLimitRule("rps", RateLimitClass.Requests, 7, TimeSpan.FromSeconds(1));
        RateLimitCounter Counter(string policy, RateLimitRule rule) => new(policy, rule, 1, TimeSpan.Zero);

        Assert.Equal("\"key-rpm\";q=7;w=60", RateLimitHeaders.PolicyText([Counter("key-rpm", rpm)]));
        Assert.Equal("\"key-rpm\";q=8;w=60", RateLimitHeaders.PolicyText([Counter("key-rpm", rpm with { Quota = 8 })]));
        Assert.Equal("\"key-rpm\";q=7;w=120", RateLimitHeaders.PolicyText([Counter("key-rpm", rpm with { Window = TimeSpan.FromMinutes(2) })]));
        Assert.Equal("\"key-rpm\";q=7;qu=\"tokens\";w=60", RateLimitHeaders.PolicyText([Counter("key-rpm", rpm with { Class = RateLimitClass.Tokens })]));
        Assert.Equal("\"org-rpm\";q=7;w=60", RateLimitHeaders.PolicyText([Counter("org-rpm", rpm)]));
        Assert.Equal("\"key-rpm\";q=7;w=60, \"key-rps\";q=7;w=1", RateLimitHeaders.PolicyText([Counter("key-rpm", rpm), Counter("key-rps", rps)]));
        Assert.Equal("\"key-rps\";q=7;w=1, \"key-rpm\";q=7;w=60", RateLimitHeaders.PolicyText([Counter("key-rps", rps), Counter("key-rpm", rpm)]));
    }
}
