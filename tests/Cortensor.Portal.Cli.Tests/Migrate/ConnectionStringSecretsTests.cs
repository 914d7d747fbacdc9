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

    [Theory]
    [InlineData("Host=db;Password=ab;Database=portal", "Host=db;Password=***;Database=portal")]
    [InlineData("Host=db;Password=x", "Host=db;Password=***")]
    [InlineData("Host=db;PWD = 7;Database=portal", "Host=db;PWD = ***;Database=portal")]
    [InlineData("Host=db;SSL Password=ab", "Host=db;SSL Password=***")]
    [InlineData("Host=db;Password='a;';Database=portal", "Host=db;Password=***;Database=portal")]
    [InlineData("Host=db;Password=\"a\"\"b\"", "Host=db;Password=***")]
    [InlineData("postgresql://portal:ab@db:5432/portal", "postgresql://portal:***@db:5432/portal")]
    public void Apply_ShortSecretShownAsAPassword_IsMasked(string given, string shown)
    {
        // Short or long, a value the text itself shows as a password is masked.
        var secrets = new ConnectionStringSecrets();
        secrets.Add(given);

        Assert.Equal($"could not use {shown} (check it)", secrets.Apply($"could not use {given} (check it)"));
    }

    [Fact]
    public void Apply_PasswordInAConnectionStringItWasNeverGiven_IsMasked()
    {
        // A driver may quote a connection string migrate never saw whole (say, after its own defaults were added).
        var secrets = new ConnectionStringSecrets();

        Assert.Equal(
            "Host=db;Password=***;Api_Key=***;Timeout=15 and Password=*** again",
            secrets.Apply("Host=db;Password=zz;Api_Key=k1;Timeout=15 and Password=other-secret again"));
    }

    [Fact]
    public void Apply_ShortSecretInOtherText_IsLeftAlone()
    {
        // A one-character password turns up by chance everywhere: only where the text shows it as a password is it masked.
        var secrets = new ConnectionStringSecrets();
        secrets.Add("Host=db;Password=1");

        Assert.Equal("sqlite 'a.db': version 1 -> 12 (applied 1, 2)", secrets.Apply("sqlite 'a.db': version 1 -> 12 (applied 1, 2)"));
    }

    [Theory]
    [InlineData("Host=db;Password=;Database=portal")]
    [InlineData("postgresql://portal:@db/portal")]
    [InlineData("Host=db;Username=pass;Database=password_reset")]
    public void Apply_EmptyPasswordOrOnlyLookalikeWords_ChangesNothing(string text)
    {
        var secrets = new ConnectionStringSecrets();
        secrets.Add(text);

        Assert.Equal(text, secrets.Apply(text));
    }
}
