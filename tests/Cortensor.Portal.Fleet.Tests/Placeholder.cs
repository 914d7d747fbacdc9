namespace Cortensor.Portal.Fleet.Tests;
