"""The HTTP application: the LMS contract, the public launch redirect, health; the console comes later."""
