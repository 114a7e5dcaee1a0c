"""Who someone is: DigiD for residents, sign-on for staff, pseudonyms, roles."""
