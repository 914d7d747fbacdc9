using Cortensor.Portal.Cli.Commands.Migrate;

namespace Cortensor.Portal.Cli.Tests.Migrate;

public sealed class ConnectionStringSecretsTests
{
    [Theory]
    [InlineData("Host=db;Username=portal;Password=s3cret-value", "s3cret-value")]
    [InlineData("Host=db;Pwd=s3cret-value", "s3cret-value")]
    [InlineData("Host=db;SSL Password=s3cret-value", "s3cret-value")]
    [InlineData("Host=db;Pasword=s3cret-value", "s3cret-value")] // misspelt key: Npgsql would reject it, the value is still a secret
    [InlineData("Host=db;Password='s3cret;value'", "s3cret;value")] // quoted value with a separator in it
    [InlineData("Host=db;Password=\"s3cret-value", "s3cret-value")] // unbalanced quote: the loose fallback
    public void Apply_MasksTheSecretAndKeepsTheRest(string connectionString, string secret)
    {
        var secrets = new ConnectionStringSecrets();
        secrets.Add(connectionString);

        var masked = secrets.Apply($"could not use {connectionString} (password {secret})");

        Assert.DoesNotContain(secret, masked, StringComparison.Ordinal);
        Assert.Contains("Host=db", masked, StringComparison.Ordinal);
        Assert.Contains("(password ***)", masked, StringComparison.Ordinal);
    }

    [Fact]
    public void Apply_PostgresUri_MasksItsPassword()
    {
        var secrets = new ConnectionStringSecrets();
        secrets.Add("postgresql://portal:s3cret%40value@db.example:5432/portal");

        var masked = secrets.Apply("rejected postgresql://portal:s3cret%40value@db.example:5432/portal (password s3cret@value)");

        Assert.Equal("rejected postgresql://portal:***@db.example:5432/portal (password ***)", masked);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("App_Data/portal.db")]
    [InlineData("Host=db;Username=portal;Database=portal")]
    public void Apply_NothingSecret_LeavesTextAlone(string? input)
    {
        var secrets = new ConnectionStringSecrets();
        secrets.Add(input);

        Assert.Equal("Host=db;Username=portal;Database=portal at App_Data/portal.db", secrets.Apply("Host=db;Username=portal;Database=portal at App_Data/portal.db"));
    }
}
