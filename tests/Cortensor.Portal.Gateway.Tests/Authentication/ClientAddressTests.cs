using System.Net;
using Cortensor.Portal.Gateway.Authentication;

namespace Cortensor.Portal.Gateway.Tests.Authentication;

public sealed class ClientAddressTests
{
    [Theory]
    [InlineData("203.0.113.7", "203.0.113.7")]
    [InlineData("127.0.0.1", "127.0.0.1")]
    [InlineData("::ffff:203.0.113.7", "203.0.113.7")] // a dual-stack socket's IPv4 client is that IPv4 client
    [InlineData("2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::/64")]
    [InlineData("2001:db8:1:2::1", "2001:db8:1:2::/64")]
    [InlineData("fe80::1%3", "fe80::/64")] // the scope id is not part of the bucket
    [InlineData("::1", "::/64")]
    public void BucketOf_Address_IsItsBucket(string address, string bucket)
        => Assert.Equal(bucket, ClientAddress.BucketOf(IPAddress.Parse(address)));

    [Fact]
    public void BucketOf_AddressesOfOneIPv6Slash64_ShareTheBucket_AndTheNeighbouringSlash64DoesNot()
    {
        var a = ClientAddress.BucketOf(IPAddress.Parse("2001:db8:aa:bb::1"));
        var b = ClientAddress.BucketOf(IPAddress.Parse("2001:db8:aa:bb:ffff:ffff:ffff:ffff"));
        var neighbour = ClientAddress.BucketOf(IPAddress.Parse("2001:db8:aa:bc::1"));

        Assert.Equal(a, b);
        Assert.NotEqual(a, neighbour);
    }

    [Fact]
    public void BucketOf_IPv4Neighbours_AreSeparate()
        => Assert.NotEqual(ClientAddress.BucketOf(IPAddress.Parse("198.51.100.1")), ClientAddress.BucketOf(IPAddress.Parse("198.51.100.2")));

    [Fact]
    public void BucketOf_NoAddress_IsNull()
        => Assert.Null(ClientAddress.BucketOf(null));
}
