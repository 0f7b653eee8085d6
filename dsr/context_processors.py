from django.conf import settings


def business(request):
    return {"business_name": settings.DSR_BUSINESS_NAME, "business_contact": settings.DSR_BUSINESS_CONTACT}
